/**
 * What the upgrader needs from the install side (edge/upgrade/install.ts) and the download side
 * (edge/upgrade/download.ts), as narrow types: the upgrader is tested with fakes of these, and
 * agent-upgrader.ts hands it the real functions. The install side's types are its own (state.ts), not copies.
 */
import type { SwapOptions } from './install.ts';
import type { InstallLayout, InstallState } from './state.ts';

export type { InstallLayout, InstallState };
/** What the upgrader passes to swapIn (the crash test's step hook and clock are not its business). */
export type SwapInOptions = Omit<SwapOptions, 'now' | 'onStep'>;

export interface InstallPort {
  readState(layout: InstallLayout): InstallState;
  markReported(layout: InstallLayout): Promise<void>;
  swapIn(layout: InstallLayout, o: SwapInOptions): Promise<void>;
  settleTrial(layout: InstallLayout, runningVersion: string, healthy: () => Promise<boolean>): Promise<'none' | 'committed' | 'rolledBack'>;
}

export interface HubFetch {
  (path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string>; body: NodeJS.ReadableStream }>;
}

export interface FetchOptions {
  baseURL: string;
  file: string;
  upgrade: string;
  caFile?: string;
  hub?: HubFetch;
  signal?: AbortSignal;
  maxBytes?: number;
}

export interface DownloadPort {
  download(o: FetchOptions & { dir: string }): Promise<{ path: string; bytes: number; sha256: string; via: 'direct' | 'hub' }>;
  fetchSmall(o: FetchOptions & { maxBytes: number }): Promise<{ body: Buffer; via: 'direct' | 'hub' }>;
  /** Removes what downloads left under dir (partial files, their metadata), but those of `keep` (an upgrade's name). */
  removeDownloads?(dir: string, keep?: string): Promise<void>;
}
