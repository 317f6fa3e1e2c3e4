/** Time as core sees it: waits and timeouts go through a Clock so tests need not sleep. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Receives one line for the user while something is waited for (the CLI prints it on stderr). */
export type Progress = (line: string) => void;
