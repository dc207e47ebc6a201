#!/usr/bin/env bun
/** tether-hub: the cloud side of Tether. Subcommands are loaded only when chosen. */
import { defineCommand, runMain } from 'citty';
import { versionLine } from '../shared/version.ts';

const main = defineCommand({
  meta: {
    name: 'tether-hub',
    version: versionLine(),
    description: 'Tether hub: tunnels to edge nodes and controllers for node pools',
  },
  subCommands: {
    run: () => import('./commands/run.ts').then((m) => m.default),
    token: () => import('./commands/token.ts').then((m) => m.default),
  },
});

void runMain(main);
