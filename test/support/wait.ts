/**
 * Waiting for a condition in tests: poll with a deadline, never a bare sleep. The implementation
 * is scripts/cluster/wait.ts (the cluster scripts need it too, and scripts/ does not import test/).
 *
 *   until(what, fn, ok, ms)      poll a value every 200 ms until ok(value); returns it
 *   waitFor(what, cond, ms)      an in-process condition, checked every 5 ms
 *   pollUntil(what, check, opts) an async readiness check, with an abort promise
 */
export { pollFor, pollUntil, until, waitFor, type PollOptions } from '../../scripts/cluster/wait.ts';
