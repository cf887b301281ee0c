/**
 * VS Code entry point: binds the controller to the `vscode` API and to
 * `vscode-languageclient`. Everything with logic lives in controller.ts and
 * below; this file only translates.
 */

import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  type ConfigurationParams,
  type LanguageClientOptions,
} from 'vscode-languageclient/node';

import { COMMANDS, VqlspController, type ClientSpec, type Host, type StatusItem } from './controller';
import { SETTINGS_SECTION } from './settings';

const NAME = 'vqlsp';

let controller: VqlspController | undefined;

/**
 * A LanguageClient whose own pop-ups are silenced while the server is not up:
 * the controller reports start failures itself, with install instructions.
 */
class VqlspLanguageClient extends LanguageClient {
  constructor(
    spec: ClientSpec,
    options: LanguageClientOptions,
    private readonly isUp: () => boolean,
  ) {
    super(NAME, 'vqlsp', spec.launch, options);
  }

  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    super.error(message, data, this.isUp() ? showNotification : false);
  }
}

export function clientOptions(spec: ClientSpec, output: vscode.OutputChannel): LanguageClientOptions {
  return {
    documentSelector: spec.languages.flatMap((language) => [
      { scheme: 'file', language },
      { scheme: 'untitled', language },
    ]),
    initializationOptions: spec.initializationOptions,
    outputChannel: output,
    initializationFailedHandler: () => false,
    errorHandler: {
      error: () => ({ action: ErrorAction.Continue, handled: true }),
      closed: () =>
        spec.shouldRestart()
          ? { action: CloseAction.Restart, handled: true }
          : { action: CloseAction.DoNotRestart, handled: true },
    },
    middleware: {
      workspace: {
        // The server may pull section "vqlsp": answer with the same options as initializationOptions.
        configuration: async (params: ConfigurationParams, token, next) => {
          const defaults: unknown = await next(params, token);
          if (!Array.isArray(defaults)) {
            return defaults as ReturnType<typeof next>;
          }
          const answers = defaults as unknown[];
          return params.items.map((item, i) => spec.configurationSection(item.section) ?? answers[i]);
        },
      },
    },
  };
}

function vscodeHost(output: vscode.OutputChannel, statusItem: vscode.StatusBarItem): Host {
  return {
    settings: () => vscode.workspace.getConfiguration(SETTINGS_SECTION),
    showError: (message, ...actions) => Promise.resolve(vscode.window.showErrorMessage(message, ...actions)),
    showInfo: (message) => void vscode.window.showInformationMessage(message),
    activeDocument: () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor) {
        return undefined;
      }
      const { line, character } = editor.selection.active;
      return { uri: editor.document.uri.toString(), languageId: editor.document.languageId, cursor: { line, character } };
    },
    openDocument: (uri) => {
      const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
      return document
        ? { uri, languageId: document.languageId, version: document.version, text: document.getText() }
        : undefined;
    },
    openSettings: () => void vscode.commands.executeCommand('workbench.action.openSettings', SETTINGS_SECTION),
    output,
    statusItem: statusItem as StatusItem,
  };
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel(NAME);
  const statusItem = vscode.window.createStatusBarItem('vqlsp.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'vqlsp';
  const host = vscodeHost(output, statusItem);
  const current: VqlspController = new VqlspController(
    host,
    (spec): VqlspLanguageClient => new VqlspLanguageClient(spec, clientOptions(spec, output), () => current.isRunning),
  );
  controller = current;
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand(COMMANDS.restart, () => current.restart()),
    vscode.commands.registerCommand(COMMANDS.showOutput, () => current.showOutput()),
    vscode.commands.registerCommand(COMMANDS.showDocumentStats, () => current.showDocumentStats()),
    vscode.workspace.onDidChangeConfiguration((event) =>
      current.onConfigurationChanged((section) => event.affectsConfiguration(section)),
    ),
    vscode.window.onDidChangeActiveTextEditor(() => current.refreshStatus()),
    vscode.workspace.onDidCloseTextDocument((document) => current.store.forget(document.uri.toString())),
  );
  await current.start();
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
