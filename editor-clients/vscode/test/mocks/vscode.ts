/**
 * A stand-in for the `vscode` module, just large enough for extension.ts.
 * `installModuleMocks` (below) makes `require('vscode')` return it; tests set
 * `settings` and read back what the extension did from `calls`.
 */

import Module from 'node:module';

export interface Disposable {
  dispose(): void;
}

export class FakeStatusBarItem {
  text = '';
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  visible = false;
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.visible = false;
  }
}

export class FakeOutputChannel {
  text = '';
  shown = 0;
  append(value: string): void {
    this.text += value;
  }
  appendLine(value: string): void {
    this.text += value + '\n';
  }
  show(): void {
    this.shown += 1;
  }
  dispose(): void {
    /* nothing to release */
  }
}

type Listener<T> = (event: T) => unknown;

export interface FakeVscodeState {
  settings: Record<string, unknown>;
  commands: Map<string, (...args: unknown[]) => unknown>;
  executed: unknown[][];
  errors: string[];
  infos: string[];
  statusItems: FakeStatusBarItem[];
  outputs: FakeOutputChannel[];
  activeTextEditor: {
    document: { uri: { toString(): string }; languageId: string };
    selection: { active: { line: number; character: number } };
  } | undefined;
  configurationListeners: Listener<{ affectsConfiguration(section: string): boolean }>[];
  editorListeners: Listener<unknown>[];
}

export const state: FakeVscodeState = {
  settings: {},
  commands: new Map(),
  executed: [],
  errors: [],
  infos: [],
  statusItems: [],
  outputs: [],
  activeTextEditor: undefined,
  configurationListeners: [],
  editorListeners: [],
};

export function reset(settings: Record<string, unknown> = {}): void {
  state.settings = settings;
  state.commands.clear();
  state.executed = [];
  state.errors = [];
  state.infos = [];
  state.statusItems = [];
  state.outputs = [];
  state.activeTextEditor = undefined;
  state.configurationListeners = [];
  state.editorListeners = [];
}

const disposable = (): Disposable => ({ dispose: () => undefined });

export const fakeVscode = {
  StatusBarAlignment: { Left: 1, Right: 2 },
  window: {
    createOutputChannel: () => {
      const channel = new FakeOutputChannel();
      state.outputs.push(channel);
      return channel;
    },
    createStatusBarItem: () => {
      const item = new FakeStatusBarItem();
      state.statusItems.push(item);
      return item;
    },
    showErrorMessage: (message: string) => {
      state.errors.push(message);
      return Promise.resolve(undefined);
    },
    showInformationMessage: (message: string) => {
      state.infos.push(message);
      return Promise.resolve(undefined);
    },
    get activeTextEditor() {
      return state.activeTextEditor;
    },
    onDidChangeActiveTextEditor: (listener: Listener<unknown>) => {
      state.editorListeners.push(listener);
      return disposable();
    },
  },
  workspace: {
    getConfiguration: (section: string) => ({
      get: <T>(key: string): T | undefined => state.settings[`${section}.${key}`] as T | undefined,
    }),
    onDidChangeConfiguration: (listener: Listener<{ affectsConfiguration(section: string): boolean }>) => {
      state.configurationListeners.push(listener);
      return disposable();
    },
    onDidCloseTextDocument: () => disposable(),
  },
  commands: {
    registerCommand: (id: string, callback: (...args: unknown[]) => unknown) => {
      state.commands.set(id, callback);
      return disposable();
    },
    executeCommand: (...args: unknown[]) => {
      state.executed.push(args);
      return Promise.resolve(undefined);
    },
  },
};

/**
 * Routes `require(name)` to `mocks[name]` for the rest of the process (the
 * seam: extension.ts imports `vscode` and `vscode-languageclient/node`, which
 * cannot load outside VS Code).
 */
export function installModuleMocks(mocks: Record<string, unknown>): void {
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = loader._load;
  loader._load = function (request: string, ...rest: unknown[]): unknown {
    if (Object.prototype.hasOwnProperty.call(mocks, request)) {
      return mocks[request];
    }
    return original.call(this, request, ...rest);
  };
}
