import { describe, expect, test } from 'bun:test';
import { ErrorCode, isTetherError } from '../errors.ts';
import { parseRequest } from './request-info.ts';
import { apiStatusOf } from './api-status.ts';

function thrown(method: string, url: string): unknown {
  try {
    parseRequest(method, url);
  } catch (e) {
    return e;
  }
  throw new Error(`expected ${method} ${url} to be rejected`);
}

function rejection(method: string, url: string, headers?: Record<string, string>): string {
  try {
    parseRequest(method, url, headers);
  } catch (e) {
    expect(isTetherError(e, ErrorCode.BadRequest)).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`expected ${method} ${url} to be rejected`);
}

describe('parseRequest: query options', () => {
  const list = (q: string) => parseRequest('GET', `/api/v1/pods?${q}`);

  test('watch: absent, 0 and false (any case) are a list; anything else, even empty, a watch', () => {
    const cases: [string, 'list' | 'watch'][] = [
      ['', 'list'],
      ['watch=false', 'list'],
      ['watch=FALSE', 'list'],
      ['watch=0', 'list'],
      ['watch=true', 'watch'],
      ['watch=1', 'watch'],
      ['watch=', 'watch'],
      ['watch', 'watch'],
      ['watch=yes', 'watch'],
      ['watch=true&watch=false', 'watch'],
    ];
    for (const [q, verb] of cases) expect([q, list(q).verb]).toEqual([q, verb]);
  });

  test('limit and timeoutSeconds are integers; limit ≤ 0 means no paging', () => {
    expect(list('limit=500').limit).toBe(500);
    expect(list('limit=%2B7').limit).toBe(7);
    expect(list('limit=0').limit).toBeUndefined();
    expect(list('limit=-3').limit).toBeUndefined();
    expect(list('limit=5&limit=x').limit).toBe(5);
    expect(list('watch=1&timeoutSeconds=0').timeoutSeconds).toBeUndefined(); // the watch handler's default
    expect(list('watch=1&timeoutSeconds=342').timeoutSeconds).toBe(342);
    expect(list('').timeoutSeconds).toBeUndefined();
  });

  test('continue, resourceVersion and resourceVersionMatch', () => {
    const a = list('limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ');
    expect(a.continue).toBe('eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ');
    expect(list('resourceVersion=').resourceVersion).toBeUndefined();
    const b = list('resourceVersion=100&resourceVersionMatch=NotOlderThan');
    expect([b.resourceVersion, b.resourceVersionMatch]).toEqual(['100', 'NotOlderThan']);
    expect(list('resourceVersion=100&resourceVersionMatch=Exact').resourceVersionMatch).toBe('Exact');
    expect(list('resourceVersionMatch=').resourceVersionMatch).toBeUndefined();
  });

  test('sendInitialEvents on a watch list (kept as three states)', () => {
    const w = list('watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true');
    expect([w.verb, w.sendInitialEvents, w.resourceVersionMatch, w.allowWatchBookmarks]).toEqual(['watch', true, 'NotOlderThan', true]);
    expect(list('watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan').sendInitialEvents).toBe(false);
    expect(list('watch=1').sendInitialEvents).toBeUndefined();
  });

  test('allowWatchBookmarks follows the same boolean rule', () => {
    expect(list('watch=1&allowWatchBookmarks=0').allowWatchBookmarks).toBe(false);
    expect(list('watch=1&allowWatchBookmarks=').allowWatchBookmarks).toBe(true);
  });

  test("'+' in a query value is a space", () => {
    expect(list('labelSelector=app+in+(a,b)').labelSelector.toString()).toBe('app in (a,b)');
  });

  test('a /watch/ path reads selectors but takes no name from the field selector', () => {
    const w = parseRequest('GET', '/api/v1/watch/pods?labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dp');
    expect([w.verb, w.name, w.labelSelector.toString(), w.fieldSelector.toString()]).toEqual(['watch', '', 'app=web', 'metadata.name=p']);
  });

  test('a selected name that cannot be a path segment is not reported as the name', () => {
    expect(list('fieldSelector=metadata.name%3Da%25b').name).toBe('');
    expect(list('fieldSelector=metadata.name%3D..').name).toBe('');
    expect(list('fieldSelector=metadata.name!%3Dp').name).toBe('');
  });

  test('non-resource requests carry no options', () => {
    const v = parseRequest('GET', '/version?labelSelector=((&limit=x');
    expect([v.isResourceRequest, v.labelSelector.empty, v.limit]).toEqual([false, true, undefined]);
  });

  test('other methods on non-resource paths are their lower-cased name', () => {
    expect(parseRequest('POST', '/apis/authentication.k8s.io').verb).toBe('post');
    expect(parseRequest('OPTIONS', '/healthz').verb).toBe('options');
    expect(parseRequest('GET', '/debug/pprof/profile').longRunning).toBe(true);
  });
});

describe('parseRequest: malformed requests are BadRequest', () => {
  // [method, url, the step the message starts with, what it says]
  const cases: [string, string, string, string][] = [
    ['GET', '/api/v1/pods?labelSelector=%zz', 'parse query', 'invalid percent-encoding in "%zz"'],
    ['GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dn%E0%A4%A', 'parse query', 'invalid percent-encoding'],
    ['GET', '/api/v1/namespaces/%zz/pods', 'parse path', 'invalid percent-encoding'],
    ['GET', '/api/v1/pods?limit=10;watch=1', 'parse query', 'invalid semicolon separator'],
    ['GET', '/api/v1/watch', 'parse path', 'unable to determine kind and namespace from "/api/v1/watch"'],
    ['GET', '/apis/apps/v1/proxy', 'parse path', 'unable to determine kind and namespace'],
    ['GET', '/api/v1//pods', 'parse path', 'empty segment in "/api/v1//pods"'],
    ['GET', '/apis//v1/deployments', 'parse path', 'empty segment'],
    ['GET', '/api/v1/namespaces/default/pods//status', 'parse path', 'empty segment'],
    ['OPTIONS', '/api/v1/pods', 'parse request', 'method OPTIONS is not supported on "/api/v1/pods"'],
    ['CONNECT', '/api/v1/namespaces/default/pods/p/exec', 'parse request', 'method CONNECT is not supported'],
  ];
  for (const [method, url, step, what] of cases) {
    test(`${method} ${url}`, () => {
      const message = rejection(method, url);
      expect(message).toStartWith(`${step}: `);
      expect(message).toContain(what);
    });
  }

  // Errors a client sees from the apiserver carry its exact words (checked against kube-apiserver
  // v1.37.2 by test/apiserver-contract.e2e.test.ts).
  const verbatim: [string, string][] = [
    ['/api/v1/pods?limit=abc', 'strconv.ParseInt: parsing "abc": invalid syntax'],
    ['/api/v1/pods?limit=1.5', 'strconv.ParseInt: parsing "1.5": invalid syntax'],
    ['/api/v1/pods?limit=', 'strconv.ParseInt: parsing "": invalid syntax'],
    ['/api/v1/pods?limit=9223372036854775808', 'strconv.ParseInt: parsing "9223372036854775808": value out of range'],
    ['/api/v1/pods?limit=99999999999999999999', 'strconv.ParseInt: parsing "99999999999999999999": value out of range'],
    ['/api/v1/pods?watch=1&timeoutSeconds=ten', 'strconv.ParseInt: parsing "ten": invalid syntax'],
    ['/api/v1/pods?labelSelector=app%3D%3D%3Dweb', "unable to parse requirement: found '=', expected: identifier"],
    ['/api/v1/pods?labelSelector=a%20b', "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"],
    ['/api/v1/pods?fieldSelector=spec.nodeName', "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"],
    ['/api/v1/pods?fieldSelector=a%3Db%5C', 'invalid field selector: invalid escape sequence: \\'],
    ['/api/v1/pods?fieldSelector=metadata.name%3D%3D%3Dx', 'invalid field selector: unescaped character in value: 61'],
    ['/api/v1/pods?resourceVersion=abc', 'invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax'],
    ['/api/v1/pods?fieldSelector=spec.containers%3Dx', 'field label not supported: spec.containers'],
    ['/api/v1/nodes?fieldSelector=status.phase%3DReady&watch=1', 'field label not supported: status.phase'],
    ['/api/v1/namespaces/default/configmaps?fieldSelector=data%3Dx', '"data" is not a known field selector: only "metadata.name", "metadata.namespace"'],
    ['/api/v1/watch/namespaces/default/pods/p?fieldSelector=metadata.name%3Dq', "fieldSelector metadata.name doesn't match requested name"],
    ['/api/v1/watch/namespaces/default/pods/p?fieldSelector=spec.nodeName%3Dn', "fieldSelector metadata.name doesn't match requested name"],
  ];
  for (const [url, message] of verbatim) {
    test(`GET ${url} → ${message}`, () => {
      expect(rejection('GET', url)).toBe(message);
    });
  }

  // ValidateListOptions: 422 Invalid, with the apiserver's message and one cause per problem.
  const invalid: [string, string][] = [
    ['/api/v1/pods?resourceVersionMatch=Exact', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided'],
    ['/api/v1/pods?resourceVersion=1&resourceVersionMatch=Newest', 'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""'],
    ['/api/v1/pods?resourceVersion=0&resourceVersionMatch=Exact', 'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'],
    ['/api/v1/pods?resourceVersion=5&resourceVersionMatch=Exact&continue=abc', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided'],
    ['/api/v1/pods?sendInitialEvents=true', 'sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list'],
    ['/api/v1/pods?watch=1&sendInitialEvents=true', 'resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan'],
    ['/api/v1/pods?watch=1&resourceVersionMatch=NotOlderThan', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided'],
    ['/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=Exact', 'resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"'],
    // The apiserver validates a /watch/ path's options as a list unless ?watch is set too.
    ['/api/v1/watch/pods?sendInitialEvents=true', 'sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list'],
  ];
  for (const [url, what] of invalid) {
    test(`GET ${url} → 422 ${what}`, () => {
      const s = apiStatusOf(thrown('GET', url));
      expect(s).toMatchObject({ code: 422, reason: 'Invalid', details: { group: 'meta.k8s.io', kind: 'ListOptions' } });
      expect(s?.message).toStartWith('ListOptions.meta.k8s.io "" is invalid: ');
      expect(s?.message).toContain(what);
      expect(s?.details?.causes?.length).toBeGreaterThan(0);
    });
  }

  test('two problems: the apiserver\'s aggregate message, two causes', () => {
    const s = apiStatusOf(thrown('GET', '/api/v1/pods?resourceVersionMatch=Exact&continue=x'));
    expect(s?.message).toBe(
      'ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided]',
    );
    expect(s?.details?.causes?.map((c) => c.reason)).toEqual(['FieldValueForbidden', 'FieldValueForbidden']);
  });

  test('a malformed resourceVersion on a GET or a WATCH is the versioner\'s 500 without a reason, as upstream', () => {
    for (const url of ['/api/v1/namespaces/default/pods/p?resourceVersion=abc', '/api/v1/pods?watch=1&resourceVersion=-1']) {
      const s = apiStatusOf(thrown('GET', url));
      expect(s).toMatchObject({ code: 500, reason: '' });
      expect(s?.message).toStartWith('resourceVersion: Invalid value: ');
    }
  });

  test('timeoutSeconds=0 is unset, as the watch handler reads it; a negative one stays (the watch ends at once)', () => {
    expect(parseRequest('GET', '/api/v1/pods?watch=1&timeoutSeconds=0').timeoutSeconds).toBeUndefined();
    expect(parseRequest('GET', '/api/v1/pods?watch=1&timeoutSeconds=-1').timeoutSeconds).toBe(-1);
    expect(parseRequest('GET', '/api/v1/pods?watch=1&timeoutSeconds=30').timeoutSeconds).toBe(30);
  });

  test('every int64 limit is valid: past 2^53 it means no paging; ≤ 0 means none either', () => {
    expect(parseRequest('GET', '/api/v1/pods?limit=9223372036854775807').limit).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseRequest('GET', '/api/v1/pods?limit=9007199254740993').limit).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseRequest('GET', '/api/v1/pods?limit=-9223372036854775808').limit).toBeUndefined();
    expect(parseRequest('GET', '/api/v1/pods?limit=%2B7').limit).toBe(7);
  });

  test('a bad selector on a DELETE of a collection is rejected too', () => {
    expect(rejection('DELETE', '/api/v1/namespaces/default/pods?labelSelector=%3D')).toStartWith("found '='");
  });

  test('an unparseable URL string', () => {
    expect(rejection('GET', 'not a url')).toStartWith('parse url: ');
  });
});

describe('parseRequest: only TetherError, whatever the input', () => {
  // A deterministic generator of hostile inputs: pieces of real requests glued with noise.
  const pieces = [
    '/', '//', 'api', 'apis', 'v1', 'apps', 'watch', 'proxy', 'namespaces', 'default', 'pods', 'p', 'status',
    'exec', 'finalize', '..', '.', '%', '%2F', '%zz', '%C3%A9', '?', '&', '=', ';', '#', 'watch=1', 'limit=',
    'labelSelector=', 'fieldSelector=', 'metadata.name%3D', 'a%3Db', 'in', '(', ')', ',', '!', '\\', ' ', '+',
    'resourceVersion=0', 'resourceVersionMatch=', 'sendInitialEvents=', 'timeoutSeconds=', 'continue=',
  ];
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'get'];
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };

  test('2000 generated requests either parse or throw E_BAD_REQUEST or an apiserver Status', () => {
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < 2000; i++) {
      let url = '/';
      const n = 1 + rand(12);
      for (let j = 0; j < n; j++) url += pieces[rand(pieces.length)] + (rand(3) === 0 ? '/' : '');
      const method = methods[rand(methods.length)] as string;
      try {
        const info = parseRequest(method, url, { 'content-type': 'application/merge-patch+json' });
        expect(typeof info.verb).toBe('string');
        parsed++;
      } catch (e) {
        if (!isTetherError(e, ErrorCode.BadRequest) && !(isTetherError(e) && apiStatusOf(e))) throw new Error(`${method} ${url} threw ${String(e)}`);
        rejected++;
      }
    }
    // Both outcomes occur, so the generator reaches the parser's paths and its error exits.
    expect(parsed).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });
});
