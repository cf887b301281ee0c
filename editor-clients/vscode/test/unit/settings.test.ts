import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import {
  DEFAULT_LANGUAGES,
  RESTART_SETTINGS,
  configurationSection,
  didChangeConfigurationParams,
  documentLanguages,
  serverOptions,
} from '../../src/settings';
import { reader } from './helpers';

const packageJson = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'),
) as {
  activationEvents: string[];
  contributes: { configuration: { properties: Record<string, { default: unknown }> } };
};
const contributed = packageJson.contributes.configuration.properties;

/** The settings VS Code would return with nothing configured: every contributed default. */
function defaults(): Record<string, unknown> {
  return Object.fromEntries(Object.entries(contributed).map(([key, p]) => [key.replace(/^vqlsp\./, ''), p.default]));
}

describe('serverOptions', () => {
  it('maps every setting to the camelCase contract, nesting diagnostics', () => {
    const options = serverOptions(
      reader({
        model: '/models/news',
        heads: ['/heads/spam'],
        device: 'cpu',
        debounceMs: 50,
        positionPolicy: 'exact',
        memoryBudgetMb: 256,
        sectionTokens: 2048,
        languages: ['markdown'],
        excludePatterns: ['drafts/'],
        maxFileLength: 1000,
        'diagnostics.threshold': 0.5,
        'diagnostics.severity': 'off',
        'diagnostics.unit': 'paragraph',
        'diagnostics.labels': { negative: { severity: 'warning' }, 'sentiment/positive': { threshold: 0.9 } },
      }),
    );
    assert.deepEqual(options, {
      model: '/models/news',
      heads: ['/heads/spam'],
      device: 'cpu',
      debounceMs: 50,
      positionPolicy: 'exact',
      memoryBudgetMb: 256,
      sectionTokens: 2048,
      languages: ['markdown'],
      excludePatterns: ['drafts/'],
      maxFileLength: 1000,
      diagnostics: {
        threshold: 0.5,
        severity: 'off',
        unit: 'paragraph',
        labels: { negative: { severity: 'warning' }, 'sentiment/positive': { threshold: 0.9 } },
      },
    });
  });

  it('leaves unset keys out so the server defaults apply', () => {
    assert.deepEqual(serverOptions(reader({})), {});
    assert.deepEqual(serverOptions(reader({ 'diagnostics.severity': 'error' })), { diagnostics: { severity: 'error' } });
  });

  it('treats an empty model path as the default model', () => {
    assert.deepEqual(serverOptions(reader({ model: '' })), { model: null });
    assert.deepEqual(serverOptions(reader({ model: null })), { model: null });
  });

  it('sends contributed defaults that match the server contract, and no client-only keys', () => {
    const options = serverOptions(reader(defaults()));
    assert.deepEqual(options, {
      model: null,
      heads: [],
      device: 'auto',
      debounceMs: 0,
      positionPolicy: 'stable',
      settleMs: 2000,
      memoryBudgetMb: 2048,
      sectionTokens: 256,
      languages: DEFAULT_LANGUAGES,
      excludePatterns: [],
      maxFileLength: 4000000,
      diagnostics: { threshold: 0.8, severity: 'information', unit: null, labels: {} },
    });
  });

  it('covers every contributed setting (server option, launch setting or trace)', () => {
    const serverKeys = new Set(['model', 'heads', 'device', 'debounceMs', 'positionPolicy', 'settleMs', 'memoryBudgetMb', 'sectionTokens', 'languages', 'excludePatterns', 'maxFileLength', 'diagnostics.threshold', 'diagnostics.severity', 'diagnostics.unit', 'diagnostics.labels']);
    for (const key of Object.keys(contributed)) {
      const name = key.replace(/^vqlsp\./, '');
      assert.ok(serverKeys.has(name) || RESTART_SETTINGS.includes(name) || name === 'trace.server', `unmapped setting ${key}`);
    }
  });
});

describe('configuration plumbing', () => {
  it('wraps options for didChangeConfiguration', () => {
    assert.deepEqual(didChangeConfigurationParams(reader({ debounceMs: 10 })), { settings: { vqlsp: { debounceMs: 10 } } });
  });

  it('answers workspace/configuration for vqlsp sections only', () => {
    const settings = reader({ device: 'cpu', 'diagnostics.threshold': 0.3 });
    assert.deepEqual(configurationSection('vqlsp', settings), { device: 'cpu', diagnostics: { threshold: 0.3 } });
    assert.deepEqual(configurationSection('vqlsp.diagnostics', settings), { threshold: 0.3 });
    assert.equal(configurationSection('vqlsp.model', settings), null);
    assert.equal(configurationSection('editor', settings), undefined);
    assert.equal(configurationSection(undefined, settings), undefined);
  });

  it('documents in the configured languages, or the default list', () => {
    assert.deepEqual(documentLanguages(reader({ languages: ['markdown'] })), ['markdown']);
    assert.deepEqual(documentLanguages(reader({ languages: [] })), DEFAULT_LANGUAGES);
    assert.deepEqual(documentLanguages(reader({})), DEFAULT_LANGUAGES);
  });

  it('activates on exactly the default languages', () => {
    assert.deepEqual(packageJson.activationEvents, DEFAULT_LANGUAGES.map((l) => `onLanguage:${l}`));
  });
});
