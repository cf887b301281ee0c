/**
 * Smoke test: the real `vqlsp serve` over stdio, driven through the LSP
 * protocol layer of vscode-languageclient (vscode-languageserver-protocol),
 * configured the way the extension configures its client: the same settings
 * -> initializationOptions, the same launch (`launchServer`), the same
 * `vqlsp/classification` handler and `workspace/configuration` answers, and
 * the capabilities that matter to the server as VS Code sends them (UTF-16
 * positions, pull diagnostics, work-done progress, configuration pulls).
 *
 * Needs: the repository's venv (or VQLSP_SERVER_COMMAND='["cmd", "arg"]' and
 * VQLSP_PYTHON) to run the server and to write a tiny random checkpoint
 * (tests/clients/tiny_model.py). It fails, never skips, when they are missing.
 */

import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type Diagnostic,
  type DocumentDiagnosticReport,
  type Hover,
  type InitializeResult,
  type ProtocolConnection,
  type PublishDiagnosticsParams,
  type TextDocumentContentChangeEvent,
} from 'vscode-languageserver-protocol/node';

import { classificationHandler } from '../../src/controller';
import { launchServer, serverCommand } from '../../src/launch';
import { CLASSIFICATION_NOTIFICATION, DIAGNOSTIC_SOURCE, DOCUMENT_STATS_COMMAND, type Classification } from '../../src/protocol';
import { configurationSection, didChangeConfigurationParams, serverOptions, type SettingsReader } from '../../src/settings';
import { ClassificationStore } from '../../src/status';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..', '..');
const TIMEOUT_MS = Number(process.env.VQLSP_SMOKE_TIMEOUT_MS ?? 60_000);

function configuredServerCommand(): string[] {
  const fromEnv = process.env.VQLSP_SERVER_COMMAND;
  return fromEnv ? (JSON.parse(fromEnv) as string[]) : [path.join(ROOT, '.venv', 'bin', 'vqlsp'), 'serve'];
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Applies LSP content changes to `text` (positions in UTF-16 code units, as JS strings index). */
function applyChanges(text: string, changes: TextDocumentContentChangeEvent[]): string {
  for (const change of changes) {
    if (!('range' in change)) {
      text = change.text;
      continue;
    }
    const offset = (p: { line: number; character: number }) => {
      let start = 0;
      for (let line = 0; line < p.line; line++) {
        start = text.indexOf('\n', start) + 1;
      }
      return start + p.character;
    };
    text = text.slice(0, offset(change.range.start)) + change.text + text.slice(offset(change.range.end));
  }
  return text;
}

/** Collects notifications; `next` waits (with a timeout, no polling) for the first that matches. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: { match: (item: T) => boolean; resolve: (item: T) => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.waiters]) {
      if (waiter.match(item)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(item);
      }
    }
  }

  all(): readonly T[] {
    return this.items;
  }

  next(match: (item: T) => boolean, what: string): Promise<T> {
    const found = this.items.find(match);
    if (found !== undefined) {
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`));
      }, TIMEOUT_MS);
      this.waiters.push({ match, resolve: (item) => { clearTimeout(timer); resolve(item); } });
    });
  }
}

describe('vqlsp serve, driven as the VS Code extension drives it', () => {
  let modelDir: string;
  let child: ChildProcess;
  let connection: ProtocolConnection;
  let stderr = '';
  let listening = false;
  let values: Record<string, unknown>;
  const settings: SettingsReader = { get: <T>(key: string) => values[key] as T | undefined };
  const store = new ClassificationStore();
  const classifications = new Inbox<Classification>();
  const pushed = new Inbox<PublishDiagnosticsParams>();
  const messages: { type: number; message: string }[] = [];
  const configurationPulls: unknown[] = [];
  let initializeResult: InitializeResult;

  const uri = 'file:///tmp/vqlsp-smoke/notes.md';
  // Non-ASCII on purpose: an en dash (1 UTF-16 unit, 3 UTF-8 bytes) and an emoji (2 units, 4 bytes).
  let text = 'The match ended 2–1 after extra time. Fans 😀 cheered!\nShares fell sharply on Monday.\n';

  before(async () => {
    modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vqlsp-smoke-model-'));
    const python = process.env.VQLSP_PYTHON ?? path.join(ROOT, '.venv', 'bin', 'python');
    execFileSync(python, [path.join(ROOT, 'tests', 'clients', 'tiny_model.py'), modelDir], { stdio: 'pipe' });
    values = {
      serverCommand: configuredServerCommand(),
      model: modelDir,
      device: 'cpu',
      debounceMs: 0,
      maxDocumentTokens: 512,
      'diagnostics.threshold': 0.5,
      'diagnostics.severity': 'warning',
    };
    child = await launchServer(serverCommand(settings), {
      cwd: ROOT,
      onStderr: (chunk) => { stderr += chunk; },
    });
    if (!child.stdout || !child.stdin) {
      throw new Error('server launched without stdio pipes');
    }
    connection = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    // The extension's handlers (controller.ts / extension.ts middleware), unchanged.
    connection.onNotification(CLASSIFICATION_NOTIFICATION, classificationHandler(store, (c) => { classifications.push(c); }));
    connection.onRequest('workspace/configuration', (params: { items: { section?: string }[] }) => {
      configurationPulls.push(params);
      return params.items.map((item) => configurationSection(item.section, settings) ?? null);
    });
    connection.onNotification('textDocument/publishDiagnostics', (params: PublishDiagnosticsParams) => { pushed.push(params); });
    connection.onNotification('window/showMessage', (m: { type: number; message: string }) => messages.push(m));
    connection.onNotification('window/logMessage', () => undefined);
    connection.onRequest('window/workDoneProgress/create', () => null);
    connection.onRequest('client/registerCapability', () => null);
    connection.onRequest('workspace/diagnostic/refresh', () => null);
    connection.onNotification('$/progress', () => undefined);
    connection.listen();
    listening = true;

    initializeResult = await connection.sendRequest<InitializeResult>('initialize', {
      processId: process.pid,
      clientInfo: { name: 'Visual Studio Code (vqlsp smoke test)', version: '1.82.0' },
      rootUri: null,
      workspaceFolders: null,
      initializationOptions: serverOptions(settings),
      capabilities: {
        general: { positionEncodings: ['utf-16'] },
        // As vscode-languageclient 9 fills them in (general.positionEncodings: only utf-16; diagnostics: pull).
        workspace: {
          configuration: true,
          didChangeConfiguration: { dynamicRegistration: true },
          executeCommand: { dynamicRegistration: true },
          diagnostics: { refreshSupport: true },
        },
        window: { workDoneProgress: true, showMessage: {} },
        textDocument: {
          synchronization: { dynamicRegistration: true, didSave: true },
          hover: { dynamicRegistration: true, contentFormat: ['markdown', 'plaintext'] },
          publishDiagnostics: { relatedInformation: true, versionSupport: false, tagSupport: { valueSet: [1, 2] } },
          diagnostic: { dynamicRegistration: true, relatedDocumentSupport: false },
        },
      },
    });
    await connection.sendNotification('initialized', {});
  });

  after(async () => {
    if (listening) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await connection.sendRequest('shutdown');
      await connection.sendNotification('exit');
      await exited;
      connection.dispose();
    }
    fs.rmSync(modelDir, { recursive: true, force: true });
  });

  it('initializes with incremental sync, pull diagnostics, hover and the stats command', () => {
    const caps = initializeResult.capabilities;
    const sync = caps.textDocumentSync;
    assert.equal(typeof sync === 'object' ? sync.change : sync, 2, 'incremental sync');
    assert.equal(caps.positionEncoding ?? 'utf-16', 'utf-16');
    assert.ok(caps.diagnosticProvider, 'VS Code pulls diagnostics, so the server offers them');
    assert.ok(caps.hoverProvider);
    assert.ok(caps.executeCommandProvider?.commands.includes(DOCUMENT_STATS_COMMAND));
  });

  it('classifies an opened document', async () => {
    await connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'markdown', version: 1, text } });
    const c = await classifications.next((x) => x.uri === uri && x.version === 1, 'classification of version 1');
    assert.equal(c.textHash, sha256(text));
    assert.deepEqual(Object.keys(c.probabilities).sort(), ['business', 'sport', 'tech']);
    assert.ok(c.label !== null && c.label in c.probabilities);
    assert.ok(Math.abs(Object.values(c.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-4);
    assert.ok(c.tokens > 0 && c.ms >= 0 && c.reused_fraction >= 0 && c.reused_fraction <= 1);
    assert.equal(store.get(uri), c, 'the extension store holds it');
  });

  it('answers pulled diagnostics for spans above the threshold', async () => {
    const report = await connection.sendRequest<DocumentDiagnosticReport>('textDocument/diagnostic', { textDocument: { uri } });
    assert.equal(report.kind, 'full');
    const items = (report as { items: Diagnostic[] }).items;
    assert.ok(items.length >= 2, `one per sentence at threshold 0.5 (two labels), got ${items.length}`);
    for (const d of items) {
      assert.equal(d.source, DIAGNOSTIC_SOURCE);
      assert.equal(d.severity, 2, 'severity "warning" from the settings');
      assert.ok(d.range.start.line <= d.range.end.line && d.range.end.line <= 2);
    }
    assert.deepEqual(pushed.all(), [], 'never both push and pull to one client');
  });

  it('follows incremental edits in UTF-16 positions and reports the new version', async () => {
    const changes: TextDocumentContentChangeEvent[] = [
      // after the emoji on line 0 (the emoji is 2 UTF-16 units): "Fans 😀 cheered!" -> "Fans 😀 really cheered!"
      { range: { start: { line: 0, character: text.indexOf(' cheered') + 1 }, end: { line: 0, character: text.indexOf(' cheered') + 1 } }, text: 'really ' },
      // replace "Monday" on line 1
      { range: { start: { line: 1, character: 23 }, end: { line: 1, character: 29 } }, text: 'Tuesday' },
    ];
    text = applyChanges(text, changes);
    assert.ok(text.includes('Fans 😀 really cheered!') && text.includes('on Tuesday.'));
    await connection.sendNotification('textDocument/didChange', { textDocument: { uri, version: 2 }, contentChanges: changes });
    const c = await classifications.next((x) => x.uri === uri && x.version === 2, 'classification of version 2');
    assert.equal(c.textHash, sha256(text), 'the server applied the edits exactly as VS Code would');
    assert.equal(store.get(uri)?.version, 2);
  });

  it('answers vqlsp.documentStats for the current version', async () => {
    const stats = await connection.sendRequest<Record<string, unknown>>('workspace/executeCommand', { command: DOCUMENT_STATS_COMMAND, arguments: [uri] });
    assert.equal(stats.uri, uri);
    assert.equal(stats.version, 2);
    assert.equal(stats.textHash, sha256(text));
    assert.equal(typeof stats.label, 'string');
  });

  it('hovers with the document label', async () => {
    const hover = await connection.sendRequest<Hover | null>('textDocument/hover', { textDocument: { uri }, position: { line: 1, character: 3 } });
    assert.ok(hover, 'a hover');
    const contents = hover.contents as { kind: string; value: string };
    assert.equal(contents.kind, 'markdown');
    assert.ok(contents.value.includes(store.get(uri)?.label ?? '?'), contents.value);
  });

  it('applies changed settings sent with didChangeConfiguration', async () => {
    values['diagnostics.threshold'] = 1;
    await connection.sendNotification('workspace/didChangeConfiguration', didChangeConfigurationParams(settings));
    const report = await connection.sendRequest<DocumentDiagnosticReport>('textDocument/diagnostic', { textDocument: { uri } });
    assert.equal(report.kind, 'full');
    assert.deepEqual((report as { items: Diagnostic[] }).items, [], 'no span reaches probability 1');
  });

  it('accepted every option the extension sent', () => {
    const complaints = messages.filter((m) => m.type <= 2);
    assert.deepEqual(complaints, [], `server complained:\n${stderr.slice(-2000)}`);
  });
});
