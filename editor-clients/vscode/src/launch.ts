/**
 * Starting the server process: which command, whether it exists, and what to
 * tell the user when it does not start.
 *
 * The extension and the Node smoke test both start the server through
 * `launchServer`, so the smoke test runs the process exactly as users get it.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { SettingsReader } from './settings';

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where the command came from, for messages ("vqlsp.serverCommand", ...). */
  origin: 'vqlsp.serverCommand' | 'vqlsp.pythonPath' | 'PATH';
}

export const INSTALL_HINT =
  'Install the server from a vqlsp checkout (`./scripts/demo` builds `.venv/bin/vqlsp`; or `pip install -e <checkout>`), ' +
  'then set `vqlsp.serverCommand` to `["/path/to/venv/bin/vqlsp", "serve"]` ' +
  'or `vqlsp.pythonPath` to that environment\'s Python.';

/** `vqlsp.serverCommand`, else `<vqlsp.pythonPath> -m vqlsp serve`, else `vqlsp serve`. */
export function serverCommand(settings: SettingsReader): ServerCommand {
  const configured = settings.get<string[] | string>('serverCommand');
  const parts = typeof configured === 'string' ? (configured ? [configured] : []) : (configured ?? []);
  if (parts.length > 0) {
    const [command, ...args] = parts;
    return { command, args, origin: 'vqlsp.serverCommand' };
  }
  const python = settings.get<string>('pythonPath');
  if (python) {
    return { command: python, args: ['-m', 'vqlsp', 'serve'], origin: 'vqlsp.pythonPath' };
  }
  return { command: 'vqlsp', args: ['serve'], origin: 'PATH' };
}

/** The executable `command` names, looked up on `PATH` like the OS would; `undefined` if none. */
export function findExecutable(
  command: string,
  env: NodeJS.ProcessEnv = process.env,
  isExecutable: (file: string) => boolean = defaultIsExecutable,
): string | undefined {
  if (command.includes('/') || command.includes('\\')) {
    return isExecutable(command) ? command : undefined;
  }
  const extensions = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    for (const ext of extensions) {
      const candidate = path.join(dir, command + ext);
      if (dir && isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

function defaultIsExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Why `command` cannot run, as a message for the user; `undefined` if it can. */
export function preflight(command: ServerCommand, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (findExecutable(command.command, env) !== undefined) {
    return undefined;
  }
  const where =
    command.origin === 'PATH'
      ? '`vqlsp` was not found on PATH.'
      : `\`${command.command}\` (from \`${command.origin}\`) does not exist or is not executable.`;
  return `vqlsp: the language server cannot start: ${where} ${INSTALL_HINT}`;
}

/** Message for a server that exited before it answered `initialize`. */
export function earlyExitMessage(command: ServerCommand, code: number | null, stderrTail: string): string {
  const last = stderrTail.trim().split('\n').slice(-1)[0] ?? '';
  const notInstalled = /No module named '?vqlsp'?|No module named vqlsp/.test(stderrTail);
  const reason = notInstalled
    ? `\`${command.command}\` has no vqlsp installed.`
    : `\`${[command.command, ...command.args].join(' ')}\` exited (code ${code ?? 'signal'})${last ? `: ${last}` : '.'}`;
  return `vqlsp: the language server stopped before it started. ${reason} ${notInstalled ? INSTALL_HINT : 'See "vqlsp: Show Output" for details.'}`;
}

/** Keeps the last `limit` characters of a stream (the server's stderr), for error messages. */
export class Tail {
  private text = '';
  constructor(private readonly limit = 4000) {}
  push(chunk: string): void {
    this.text = (this.text + chunk).slice(-this.limit);
  }
  toString(): string {
    return this.text;
  }
}

export interface LaunchHooks {
  /**
   * Every chunk the server writes to stderr (its log). vscode-languageclient already copies
   * a spawned server's stderr into its output channel: the extension leaves this unset.
   */
  onStderr?: (chunk: string) => void;
  /** An error of the running process (a broken pipe), as a line for the log. */
  onProcessError?: (message: string) => void;
  /** The process exited: its code and the tail of its stderr. */
  onExit?: (code: number | null, stderrTail: string) => void;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Spawn the server with stdio pipes. Resolves once the process runs, rejects
 * (with the OS error, e.g. ENOENT) if it cannot be spawned at all.
 */
export function launchServer(command: ServerCommand, hooks: LaunchHooks = {}): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(command.command, command.args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: hooks.env ?? process.env,
      cwd: hooks.cwd,
    });
    const tail = new Tail();
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      tail.push(chunk);
      hooks.onStderr?.(chunk);
    });
    child.once('error', reject);
    child.once('spawn', () => {
      child.off('error', reject);
      // A later error (e.g. a broken pipe) must not become an uncaught exception.
      child.on('error', (error) => hooks.onProcessError?.(`[vqlsp client] server process error: ${error.message}`));
      child.once('exit', (code) => hooks.onExit?.(code, tail.toString()));
      resolve(child);
    });
  });
}
