/**
 * The extension's behaviour, written against small interfaces (`Host`,
 * `ClientLike`) instead of the `vscode` module: `extension.ts` is the only
 * file that binds them to VS Code and `vscode-languageclient`, and the unit
 * tests bind them to fakes.
 */

import type { ChildProcess } from 'node:child_process';

import { earlyExitMessage, launchServer, preflight, serverCommand, INSTALL_HINT, type ServerCommand } from './launch';
import {
  CLASSIFICATION_NOTIFICATION,
  DOCUMENT_STATS_COMMAND,
  RESYNC_NOTIFICATION,
  isClassification,
  isResync,
  type Classification,
} from './protocol';
import {
  RESTART_SETTINGS,
  SETTINGS_SECTION,
  configurationSection,
  didChangeConfigurationParams,
  documentLanguages,
  serverOptions,
  type ServerOptions,
  type SettingsReader,
} from './settings';
import { ClassificationStore, statsReport, statsSummary, statusText, statusTooltip } from './status';

export const COMMANDS = {
  restart: 'vqlsp.restartServer',
  showOutput: 'vqlsp.showOutput',
  showDocumentStats: 'vqlsp.showDocumentStats',
} as const;

export interface StatusItem {
  text: string;
  tooltip: string | undefined;
  command: string | undefined;
  show(): void;
  hide(): void;
}

/** An LSP position: zero-based line and character. */
export interface CursorPosition {
  line: number;
  character: number;
}

export interface OutputSink {
  append(text: string): void;
  appendLine(text: string): void;
  show(preserveFocus?: boolean): void;
}

/** The editor, as the controller needs it. */
export interface Host {
  settings(): SettingsReader;
  /** Shows an error with buttons; resolves to the button picked, if any. */
  showError(message: string, ...actions: string[]): Promise<string | undefined>;
  showInfo(message: string): void;
  /** The active editor's document, and its cursor in the editor's (UTF-16) position units. */
  activeDocument(): { uri: string; languageId: string; cursor?: CursorPosition } | undefined;
  /** An open document's current state, by URI. */
  openDocument(uri: string): { uri: string; languageId: string; version: number; text: string } | undefined;
  openSettings(): void;
  readonly output: OutputSink;
  readonly statusItem: StatusItem;
}

/** The language client, as the controller needs it (a subset of `LanguageClient`). */
export interface ClientLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  onNotification(method: string, handler: (params: unknown) => void): unknown;
  sendRequest<R>(method: string, params: unknown): Promise<R>;
  sendNotification(method: string, params: unknown): Promise<void>;
}

/** Everything the client factory needs to build a client the way vqlsp wants it. */
export interface ClientSpec {
  launch: () => Promise<ChildProcess>;
  initializationOptions: ServerOptions;
  languages: string[];
  /** Answer for one `workspace/configuration` item; `undefined` = not ours. */
  configurationSection: (section: string | undefined) => unknown;
  /** Asked when the server process dies: restart it or give up. */
  shouldRestart: () => boolean;
}

export type ClientFactory = (spec: ClientSpec) => ClientLike;

/** Handles `vqlsp/classification`: validate, keep the newest per document, report. Shared with the smoke test. */
export function classificationHandler(
  store: ClassificationStore,
  onChange: (c: Classification) => void,
  onInvalid: (params: unknown) => void = () => undefined,
): (params: unknown) => void {
  return (params) => {
    if (!isClassification(params)) {
      onInvalid(params);
      return;
    }
    if (store.update(params)) {
      onChange(params);
    }
  };
}

const MAX_RESTARTS = 4;
const EXIT_GRACE_MS = 1000;
const RESTART_WINDOW_MS = 3 * 60_000;
const SETTINGS_ACTION = 'Open Settings';
const OUTPUT_ACTION = 'Show Output';

export class VqlspController {
  readonly store = new ClassificationStore();
  private client: ClientLike | undefined;
  private running = false;
  private earlyExit: string | undefined;
  private exited: Promise<void> | undefined;
  private crashes: number[] = [];

  constructor(
    private readonly host: Host,
    private readonly createClient: ClientFactory,
    private readonly now: () => number = Date.now,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  /**
   * Answers `vqlsp/resync`: the server lost track of a document and waits for its whole
   * text, so send it as a fresh `didOpen` (the server replaces its copy; later incremental
   * changes apply on top of it).
   */
  private resync(params: unknown): void {
    if (!isResync(params)) {
      this.host.output.appendLine(`[vqlsp client] ignored malformed resync: ${JSON.stringify(params)}`);
      return;
    }
    const document = this.host.openDocument(params.uri);
    this.host.output.appendLine(
      `[vqlsp client] server resync of ${params.uri} (${params.reason}): ` +
        (document ? `sending its text, version ${document.version}` : 'the document is no longer open'),
    );
    if (document === undefined || this.client === undefined) {
      return;
    }
    void this.client
      .sendNotification('textDocument/didOpen', {
        textDocument: { uri: document.uri, languageId: document.languageId, version: document.version, text: document.text },
      })
      .catch((error: unknown) => this.host.output.appendLine(`[vqlsp client] resync failed: ${String(error)}`));
  }

  /** Starts the server; on failure tells the user why and how to fix it, and resolves anyway. */
  async start(): Promise<void> {
    const settings = this.host.settings();
    const command = serverCommand(settings);
    const problem = preflight(command);
    if (problem !== undefined) {
      this.fail(problem);
      return;
    }
    this.earlyExit = undefined;
    this.crashes = [];
    const spec: ClientSpec = {
      launch: () => this.launch(command),
      initializationOptions: serverOptions(settings),
      languages: documentLanguages(settings),
      configurationSection: (section) => configurationSection(section, this.host.settings()),
      shouldRestart: () => this.shouldRestart(),
    };
    const client = this.createClient(spec);
    this.client = client;
    client.onNotification(
      CLASSIFICATION_NOTIFICATION,
      classificationHandler(
        this.store,
        () => this.refreshStatus(),
        (params) => this.host.output.appendLine(`[vqlsp client] ignored malformed classification: ${JSON.stringify(params)}`),
      ),
    );
    client.onNotification(RESYNC_NOTIFICATION, (params) => this.resync(params));
    this.setStatus('$(sync~spin) vqlsp', `vqlsp: starting \`${[command.command, ...command.args].join(' ')}\``);
    try {
      await client.start();
    } catch (error) {
      this.client = undefined;
      // The closed pipe can be noticed before the exit status: give the exit a moment to arrive.
      await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, EXIT_GRACE_MS))]);
      this.fail(this.earlyExitMessage() ?? startErrorMessage(command, error));
      return;
    }
    this.running = true;
    this.refreshStatus();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.running = false;
    this.store.clear();
    if (client) {
      try {
        await client.stop();
      } catch (error) {
        this.host.output.appendLine(`[vqlsp client] stopping the server: ${String(error)}`);
      }
    }
  }

  async restart(): Promise<void> {
    this.host.output.appendLine('[vqlsp client] restarting the server');
    await this.stop();
    await this.start();
  }

  showOutput(): void {
    this.host.output.show(true);
  }

  /** `vqlsp.showDocumentStats`: asks the server for the active document's compute stats, with the
   * cursor so that the server also reports the compute of the sentence under it (`computeAtCursor`). */
  async showDocumentStats(): Promise<void> {
    const document = this.host.activeDocument();
    if (!document) {
      this.host.showInfo('vqlsp: open a document first.');
      return;
    }
    if (!this.client || !this.running) {
      void this.host.showError('vqlsp: the language server is not running.', OUTPUT_ACTION).then((a) => this.act(a));
      return;
    }
    try {
      const stats = await this.client.sendRequest<Record<string, unknown> | null>('workspace/executeCommand', {
        command: DOCUMENT_STATS_COMMAND,
        arguments: document.cursor ? [document.uri, document.cursor] : [document.uri],
      });
      if (!stats) {
        this.host.showInfo(`vqlsp: no stats for ${document.uri} (is its language one of vqlsp.languages?)`);
        return;
      }
      this.host.output.appendLine(`[vqlsp] compute stats for ${document.uri}\n${statsReport(stats)}`);
      this.host.showInfo(statsSummary(stats));
    } catch (error) {
      void this.host.showError(`vqlsp: compute stats failed: ${errorText(error)}`, OUTPUT_ACTION).then((a) => this.act(a));
    }
  }

  /** Settings changed: restart for a new server command, otherwise push the new options. */
  async onConfigurationChanged(affects: (section: string) => boolean): Promise<void> {
    if (!affects(SETTINGS_SECTION)) {
      return;
    }
    if (RESTART_SETTINGS.some((key) => affects(`${SETTINGS_SECTION}.${key}`)) || !this.running) {
      await this.restart();
      return;
    }
    await this.client?.sendNotification('workspace/didChangeConfiguration', didChangeConfigurationParams(this.host.settings()));
    this.refreshStatus();
  }

  /** Shows the active document's label, or hides the item for documents vqlsp does not read. */
  refreshStatus(): void {
    if (!this.running) {
      return;
    }
    const document = this.host.activeDocument();
    if (!document || !documentLanguages(this.host.settings()).includes(document.languageId)) {
      this.host.statusItem.hide();
      return;
    }
    const c = this.store.get(document.uri);
    if (c) {
      this.setStatus(statusText(c), statusTooltip(c));
    } else {
      this.setStatus('$(sync~spin) vqlsp', 'vqlsp: classifying…');
    }
  }

  private async launch(command: ServerCommand): Promise<ChildProcess> {
    let exited!: () => void;
    this.exited = new Promise((resolve) => (exited = resolve));
    return launchServer(command, {
      // No onStderr: vscode-languageclient copies the child's stderr into the output channel.
      onProcessError: (message) => this.host.output.appendLine(message),
      onExit: (code, tail) => {
        if (!this.running) {
          this.earlyExit = earlyExitMessage(command, code, tail);
        }
        exited();
      },
    });
  }

  /** Set by the exit callback, hence not visible to control-flow narrowing in `start`. */
  private earlyExitMessage(): string | undefined {
    return this.earlyExit;
  }

  private shouldRestart(): boolean {
    if (!this.running) {
      return false; // it never came up: restarting would fail the same way
    }
    const now = this.now();
    this.crashes = this.crashes.filter((t) => now - t < RESTART_WINDOW_MS);
    this.crashes.push(now);
    if (this.crashes.length > MAX_RESTARTS) {
      this.running = false;
      this.fail(`vqlsp: the language server crashed ${this.crashes.length} times in 3 minutes and was not restarted.`);
      return false;
    }
    return true;
  }

  private fail(message: string): void {
    this.host.output.appendLine(`[vqlsp client] ${message}`);
    this.setStatus('$(error) vqlsp', message);
    void this.host.showError(message, SETTINGS_ACTION, OUTPUT_ACTION).then((action) => this.act(action));
  }

  private act(action: string | undefined): void {
    if (action === SETTINGS_ACTION) {
      this.host.openSettings();
    } else if (action === OUTPUT_ACTION) {
      this.showOutput();
    }
  }

  private setStatus(text: string, tooltip: string): void {
    const item = this.host.statusItem;
    item.text = text;
    item.tooltip = tooltip;
    item.command = COMMANDS.showDocumentStats;
    item.show();
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Message for a `client.start()` that failed without an early exit being seen. */
export function startErrorMessage(command: ServerCommand, error: unknown): string {
  const text = errorText(error);
  if (/ENOENT/.test(text) || (error as { code?: string } | null)?.code === 'ENOENT') {
    return `vqlsp: the language server cannot start: \`${command.command}\` was not found. ${INSTALL_HINT}`;
  }
  return `vqlsp: the language server failed to start: ${text}`;
}
