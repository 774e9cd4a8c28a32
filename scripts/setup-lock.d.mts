// Types of scripts/setup-lock.mjs, for its tests.
export declare function setupLockName(folder?: string): string;
export declare function acquireSetupLock(options?: {
  name?: string;
  waitMs?: number;
  pollMs?: number;
  say?: (line: string) => void;
}): Promise<void>;
