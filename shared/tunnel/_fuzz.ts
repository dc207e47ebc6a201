/**
 * Moved to test/support/fuzz.ts (test support does not live in product folders). This re-export
 * stays only until edge/proxy/server.fuzz.test.ts imports it from there; then delete this file.
 */
export * from '../../test/support/fuzz.ts';
