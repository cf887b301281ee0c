/**
 * code-server (VS Code 1.100 in the browser, https://github.com/coder/code-server) in a
 * sandbox of its own, for the real-VS-Code test.
 *
 * Everything it writes lies under one fresh folder: user data (so no backups of unsaved
 * edits come back from an earlier run), extensions, and the XDG directories. It runs in a
 * session of its own (`setsid`, Node's `detached`), so the test can list the processes it
 * started (the extension host, the `vqlsp serve` that the extension starts) and end the
 * whole group: stopping only the main process leaves the extension host behind.
 */

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { until } from './wait';

export interface Sandbox {
  root: string;
  userData: string;
  extensions: string;
  /** The folder the window opens. */
  folder: string;
  /** code-server's and its children's environment: XDG_* inside the sandbox. */
  env: NodeJS.ProcessEnv;
}

/**
 * A fresh sandbox under `root`: its folders are emptied first, or unsaved edits of an
 * earlier run would come back from the user data's backups.
 */
export function makeSandbox(root: string, env: NodeJS.ProcessEnv = process.env): Sandbox {
  for (const name of ['user-data', 'extensions', 'workspace', 'xdg']) {
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
  }
  const dir = (name: string) => {
    const p = path.join(root, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  };
  return {
    root,
    userData: dir('user-data'),
    extensions: dir('extensions'),
    folder: dir('workspace'),
    env: {
      ...env,
      XDG_CONFIG_HOME: dir('xdg/config'),
      XDG_DATA_HOME: dir('xdg/data'),
      XDG_CACHE_HOME: dir('xdg/cache'),
      XDG_STATE_HOME: dir('xdg/state'),
      XDG_RUNTIME_DIR: dir('xdg/runtime'),
    },
  };
}

/**
 * Writes settings into the sandbox. A code-server window is a remote window: there,
 * machine-overridable settings (vqlsp.serverCommand, vqlsp.pythonPath, vqlsp.model) are
 * read from the Machine settings; in User settings they are dropped on the first change.
 */
export function writeSettings(sandbox: Sandbox, scope: 'User' | 'Machine', settings: Record<string, unknown>): void {
  const dir = path.join(sandbox.userData, scope);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'settings.json'), JSON.stringify(settings, null, 2));
}

/** `code-server --install-extension VSIX` into the sandbox; returns its output. */
export function installExtension(executable: string, sandbox: Sandbox, vsix: string): string {
  return execFileSync(
    executable,
    ['--user-data-dir', sandbox.userData, '--extensions-dir', sandbox.extensions, '--install-extension', vsix],
    { env: sandbox.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 },
  );
}

export interface ProcessInfo {
  pid: number;
  argv: string[];
}

/** The live processes of session `sid`, from /proc (field 6 of /proc/PID/stat is the session id). */
export function sessionProcesses(sid: number): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || Number(fields[3]) !== sid) {
        continue;
      }
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      found.push({ pid: Number(entry), argv });
    } catch {
      // the process ended while we read it
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export class CodeServer {
  private logText = '';
  private exitCode: number | null | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly sandbox: Sandbox,
    private readonly logFile: string,
  ) {
    const append = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.logText += text;
      fs.appendFileSync(this.logFile, text);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    child.once('exit', (code) => {
      this.exitCode = code;
    });
  }

  /**
   * Starts code-server on 127.0.0.1 and a port the system picks (`:0`; the log names it)
   * and resolves with the URL it listens on. `logFile` receives its output.
   */
  static async start(executable: string, sandbox: Sandbox, logFile: string, timeoutMs: number): Promise<{ server: CodeServer; url: string }> {
    const args = [
      '--bind-addr', '127.0.0.1:0',
      '--auth', 'none',
      '--user-data-dir', sandbox.userData,
      '--extensions-dir', sandbox.extensions,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      sandbox.folder,
    ];
    fs.writeFileSync(logFile, `$ ${executable} ${args.join(' ')}\n`);
    const child = spawn(executable, args, { env: sandbox.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new CodeServer(child, sandbox, logFile);
    const url = await until(
      'code-server to listen',
      () => {
        if (server.exitCode !== undefined) {
          throw new Error(`code-server exited (code ${server.exitCode}):\n${server.log()}`);
        }
        return /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(server.logText)?.[1];
      },
      timeoutMs,
    );
    return { server, url };
  }

  /** The id of its session and process group (it is their leader). */
  get pid(): number {
    if (this.child.pid === undefined) {
      throw new Error('code-server has no pid');
    }
    return this.child.pid;
  }

  log(): string {
    return this.logText;
  }

  processes(): ProcessInfo[] {
    return sessionProcesses(this.pid);
  }

  get exited(): boolean {
    return this.exitCode !== undefined;
  }

  /** SIGTERM to code-server's main process only, as `kill PID` or a service manager's stop would. */
  terminate(): void {
    if (!this.exited) {
      this.child.kill('SIGTERM');
    }
  }

  /** Ends every process of its session that is still there: SIGTERM, then SIGKILL after `graceMs`. */
  async killAll(graceMs = 5000): Promise<void> {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-this.pid, sig);
      } catch {
        // the group is gone already
      }
    };
    signal('SIGTERM');
    try {
      await until('code-server\'s processes to end', () => (this.processes().length === 0 ? true : undefined), graceMs);
    } catch {
      signal('SIGKILL');
    }
  }
}
