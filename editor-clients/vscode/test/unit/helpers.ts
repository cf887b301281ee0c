/** Builders shared by the unit tests. */

import type { Classification } from '../../src/protocol';
import type { SettingsReader } from '../../src/settings';

export function reader(values: Record<string, unknown>): SettingsReader {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

export function classification(overrides: Partial<Classification> = {}): Classification {
  return {
    uri: 'file:///notes.md',
    version: 3,
    label: 'sport',
    probabilities: { sport: 0.873, business: 0.1, tech: 0.027 },
    tokens: 812,
    reused_fraction: 0.934,
    ms: 12.34,
    textHash: 'ab'.repeat(32),
    ...overrides,
  };
}
