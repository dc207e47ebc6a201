#!/usr/bin/env bun
/** tether-edge: the edge agent. Subcommands are loaded only when chosen. */
import { defineCommand, runMain } from 'citty';
import { versionLine } from '../shared/version.ts';

const main = defineCommand({
  meta: {
    name: 'tether-edge',
    version: versionLine(),
    description: 'Tether edge agent: keeps an edge node working when its link to the cloud breaks',
  },
  subCommands: {
    run: () => import('./commands/run.ts').then((m) => m.default),
    status: () => import('./commands/status.ts').then((m) => m.default),
    store: () => import('./commands/store.ts').then((m) => m.default),
    join: () => import('./commands/join.ts').then((m) => m.default),
    reset: () => import('./commands/reset.ts').then((m) => m.default),
    'local-client': () => import('./join/local-client-command.ts').then((m) => m.default),
    version: () => import('./upgrade/version-command.ts').then((m) => m.default),
    upgrade: () => import('./commands/upgrade-guard.ts').then((m) => m.default),
  },
});

void runMain(main);
