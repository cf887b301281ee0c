/**
 * Waiting on a condition with a deadline: the only synchronisation the real-VS-Code test
 * uses (never a fixed sleep). The workbench and the processes are polled; a poll that
 * throws ends the wait with that error.
 */

import { setTimeout as delay } from 'node:timers/promises';

/** How long one wait may take, unless a step says otherwise (VQLSP_E2E_TIMEOUT_MS). */
export const TIMEOUT_MS = Number(process.env.VQLSP_E2E_TIMEOUT_MS ?? 120_000);

const POLL_MS = 250;

/**
 * Resolves with `get()`'s first value that is not `undefined`, polling every `POLL_MS`.
 * After `timeoutMs` it rejects, naming `what` and the last value `describe` gave.
 */
export async function until<T>(
  what: string,
  get: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number = TIMEOUT_MS,
  describe: () => string | Promise<string> = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await get();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      const seen = await describe();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen ? `; last seen: ${seen}` : ''}`);
    }
    await delay(POLL_MS);
  }
}
