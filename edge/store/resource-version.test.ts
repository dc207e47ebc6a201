import { describe, expect, test } from 'bun:test';
import {
  advances,
  afterLastWatchEnd,
  afterList,
  afterPrune,
  afterWatchStart,
  caughtUpWith,
  listAnswerVersion,
  listTooNew,
  localResourceVersion,
  namesVersion,
  newerThanList,
  resumeFrom,
  showsChange,
  watchStart,
} from './resource-version.ts';

describe('how a watch starts (rule 1)', () => {
  test('sendInitialEvents=true is a WatchList, whatever its resourceVersion', () => {
    expect(watchStart({ sendInitialEvents: true, resourceVersion: '' })).toEqual({ kind: 'watch-list' });
    expect(watchStart({ sendInitialEvents: true, resourceVersion: '42' })).toEqual({ kind: 'watch-list' });
  });
  test('unset or "0" starts from now; any other value resumes after it', () => {
    expect(watchStart({})).toEqual({ kind: 'from-now' });
    expect(watchStart({ resourceVersion: '0', sendInitialEvents: false })).toEqual({ kind: 'from-now' });
    expect(watchStart({ resourceVersion: '17' })).toEqual({ kind: 'resume', rv: '17' });
  });
  test('a resumed watch is served from the log from continuousFrom on, else it is expired', () => {
    expect(resumeFrom('10', { continuousFrom: 10 })).toBe(10);
    expect(resumeFrom('9', { continuousFrom: 10 })).toBeUndefined();
    expect(resumeFrom('not-a-number', { continuousFrom: 0 })).toBeUndefined();
  });
});

describe('the log marks', () => {
  const m = { watermark: 20, continuousFrom: 5 };
  test('events and BOOKMARKs at or below the watermark, or without a number, move nothing (rule 2)', () => {
    expect(advances(21, 20)).toBe(true);
    expect(advances(20, 20)).toBe(false);
    expect(advances(null, 20)).toBe(false);
  });
  test('a LIST item above the watermark or without a number shows a change; a stored object newer than the list stays', () => {
    expect(showsChange(21, 20)).toBe(true);
    expect(showsChange(null, 20)).toBe(true);
    expect(showsChange(20, 20)).toBe(false);
    expect(newerThanList(31, 30)).toBe(true);
    expect(newerThanList(30, 30)).toBe(false);
    expect(newerThanList(null, 30)).toBe(false);
  });
  test('a LIST (rule 3): first one starts the log, no change keeps it, a live watch makes it wait, else it restarts', () => {
    expect(afterList({ watermark: 0, continuousFrom: 0 }, 30, true, false)).toEqual({ watermark: 30, continuousFrom: 30 });
    expect(afterList(m, 30, false, false)).toEqual({ watermark: 30, continuousFrom: 5, caughtUp: true });
    expect(afterList(m, 30, true, true)).toEqual({ watermark: 20, continuousFrom: 5, behind: 30 });
    expect(afterList(m, 30, true, false)).toEqual({ watermark: 30, continuousFrom: 30 });
    expect(afterList(m, 15, true, false)).toEqual({ watermark: 20, continuousFrom: 5 });
  });
  test('the log catches up with a LIST it was behind; the last watch ending before that restarts it at the LIST', () => {
    expect(caughtUpWith(30, 29)).toBe(false);
    expect(caughtUpWith(30, 30)).toBe(true);
    expect(caughtUpWith(undefined, 30)).toBe(false);
    expect(afterLastWatchEnd(m, 30)).toEqual({ watermark: 30, continuousFrom: 30 });
    expect(afterLastWatchEnd(m, 20)).toBeUndefined();
    expect(afterLastWatchEnd(m, undefined)).toBeUndefined();
  });
  test('a watch start (rule 4): above the watermark with no live watch restarts the log; one without a number is not a source', () => {
    expect(afterWatchStart(m, '25', false)).toEqual({ counts: true, restart: { watermark: 25, continuousFrom: 25 } });
    expect(afterWatchStart(m, '25', true)).toEqual({ counts: true });
    expect(afterWatchStart(m, '20', false)).toEqual({ counts: true });
    expect(afterWatchStart(m, '0', false)).toEqual({ counts: true });
    expect(afterWatchStart(m, '', false)).toEqual({ counts: false });
  });
  test('pruning moves continuousFrom up, never down (rule 5)', () => {
    expect(afterPrune(m, 8)).toEqual({ watermark: 20, continuousFrom: 8 });
    expect(afterPrune(m, 5)).toBeUndefined();
  });
  test("an offline write is stored at the resource's highest watermark, or its own version when higher (rule 6)", () => {
    expect(localResourceVersion('7', [20, 12])).toBe(20);
    expect(localResourceVersion('25', [20])).toBe(25);
    expect(localResourceVersion(undefined, [])).toBe(0);
  });
});

describe('offline LISTs (rule 7)', () => {
  test("answered at the covering stream's watermark, else the resource's highest", () => {
    expect(listAnswerVersion(12, () => 40)).toBe('12');
    expect(listAnswerVersion(undefined, () => 40)).toBe('40');
  });
  test('"0" and unset name no version; a newer named one is too new unless matched Exact', () => {
    expect(namesVersion(undefined)).toBe(false);
    expect(namesVersion('0')).toBe(false);
    expect(namesVersion('3')).toBe(true);
    expect(listTooNew({ resourceVersion: '41' }, '40')).toBe(true);
    expect(listTooNew({ resourceVersion: '40' }, '40')).toBe(false);
    expect(listTooNew({ resourceVersion: '41', resourceVersionMatch: 'Exact' }, '40')).toBe(false);
    expect(listTooNew({ resourceVersion: '0' }, '')).toBe(false);
    expect(listTooNew({ resourceVersion: '1' }, '')).toBe(true);
  });
});
