/**
 * The extension in a real VS Code: code-server 4.100.3 (VS Code 1.100.3) with the .vsix
 * built from this checkout (`npm run package`), the real `vqlsp serve` on the default
 * model, and a headless Chromium (Debian's, driven by playwright-core) showing the
 * workbench. It checks what a user sees: the status bar label, the Problems panel, the
 * label following what is typed, the three quick fixes of a diagnostic applied one after the
 * other (ignore the sentence, the label in the file, the label in the workspace, each checked
 * on disk and in the Problems panel), that the server's stderr reaches the output channel once, the restart command, the error for a bad
 * server command, and that the server ends with code-server. Screenshots go to the run's folder.
 *
 * Set up by scripts/setup.sh (dev extras) and run by tests/clients/test_vscode.py. By hand:
 * `npm run compile && npm run package && npm run test:e2e`. Environment:
 *   VQLSP_CODE_SERVER     code-server executable (default: <repo>/.venv/code-server/node_modules/.bin/code-server)
 *   VQLSP_CHROMIUM        Chromium executable (default: `chromium` on PATH)
 *   VQLSP_SERVER_COMMAND  '["cmd", "arg"]' (default: <repo>/.venv/bin/vqlsp serve)
 *   VQLSP_E2E_DIR         where the run's sandbox, logs and screenshots go (default: a new temp folder)
 *   VQLSP_E2E_TIMEOUT_MS  deadline of one wait (default 120000)
 * It fails, never skips, when something it needs is missing.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';

import { chromium, type Browser } from 'playwright-core';

import { findExecutable } from '../../src/launch';
import { CodeServer, installExtension, isAlive, makeSandbox, writeSettings, type ProcessInfo, type Sandbox } from './codeServer';
import { TIMEOUT_MS, until } from './wait';
import { Workbench, type Problem } from './workbench';

const EXTENSION = path.resolve(__dirname, '..', '..', '..');
const ROOT = path.resolve(EXTENSION, '..', '..');
const VSIX = path.join(EXTENSION, 'dist', 'vqlsp.vsix');
/** The first result waits for the default model to load (and, on a fresh machine, to be converted once). */
const FIRST_RESULT_MS = Math.max(TIMEOUT_MS, 300_000);

// What the default model reads in these texts, checked against `vqlsp serve` first: the
// document head says business, then sports (both near 100%); the sentiment head flags one
// sentence of each as negative (100%) and nothing else at the default threshold (0.8).
const BUSINESS = [
  '# Chip maker reports record quarter',
  '',
  'The semiconductor company said on Tuesday that revenue rose 40% in the three months to September, ' +
    "beating analysts' forecasts, as cloud providers raced to build data centres.",
  '',
  'Shares rose 6% in after-hours trading. The results were terrible for rivals, whose sales collapsed and whose losses deepened badly.',
  '',
].join('\n');
const BUSINESS_NEGATIVE = 'The results were terrible';
const SPORTS = [
  'United beat City 3-1 in the derby on Sunday.',
  '',
  'The striker scored twice in the second half as United beat City at Old Trafford, lifting the club to second place ' +
    'in the Premier League table. The manager praised his players after the match. ' +
    'The visitors were awful, and their miserable defence collapsed again.',
  '',
].join('\n');
const SPORTS_NEGATIVE = 'The visitors were awful';
const BAD_COMMAND = ['/nonexistent/vqlsp', 'serve'];
// More files of the workspace, for the label quick fixes: one for "in this file", two that
// "in the workspace" must both silence.
const LABEL_IN_FILE = 'report.md';
const WORKSPACE_FILES = { 'review.md': BUSINESS, 'match.md': SPORTS } as const;
const FILES: Record<string, string> = { 'business.md': BUSINESS, [LABEL_IN_FILE]: BUSINESS, ...WORKSPACE_FILES };

/** 1-based line and column of `needle` in `text`, as the Problems panel shows them. */
function lineAndColumn(text: string, needle: string): { line: number; column: number } {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, `"${needle}" is in the text`);
  const before = text.slice(0, at).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

function isNegativeAt(p: Problem, where: { line: number; column: number }): boolean {
  return p.source === 'vqlsp' && /^sentence reads as negative \(\d+%\)$/.test(p.message) && p.line === where.line && p.column === where.column;
}

/** The server command, logging at info level: its stderr then says "model ready" once per start. */
function serverCommand(): string[] {
  const fromEnv = process.env.VQLSP_SERVER_COMMAND;
  const command = fromEnv ? (JSON.parse(fromEnv) as string[]) : [path.join(ROOT, '.venv', 'bin', 'vqlsp'), 'serve'];
  return [...command, '--log-level', 'info'];
}

/** Every file under `dir` whose path matches `pattern`. */
function filesUnder(dir: string, pattern: RegExp): string[] {
  if (!fs.existsSync(dir)) {
    return [];
  }
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((name) => path.join(dir, name))
    .filter((file) => pattern.test(file) && fs.statSync(file).isFile());
}

function required(what: string, file: string | undefined, hint: string): string {
  if (file === undefined || !fs.existsSync(file)) {
    throw new Error(`${what} not found${file ? ` at ${file}` : ''}: ${hint}`);
  }
  return file;
}

/** `vqlsp serve` processes: `<python> <venv>/bin/vqlsp serve` or `<python> -m vqlsp serve`. */
function isVqlspServer(p: ProcessInfo): boolean {
  return p.argv.includes('serve') && p.argv.some((a) => a === 'vqlsp' || a.endsWith('/vqlsp'));
}

describe('the extension in a real VS Code (code-server) with the real server', () => {
  let sandbox: Sandbox;
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let workbench: Workbench;
  let shots: string;
  let vqlspPid: number;
  let broken: string | undefined;
  const article = () => path.join(sandbox.folder, 'business.md');
  const saved = (name: string) => fs.readFileSync(path.join(sandbox.folder, name), 'utf8');
  const vqlspProblems = (ps: Problem[]) => ps.filter((p) => p.source === 'vqlsp');
  const QUICK_FIXES = [
    'Ignore this sentence (vqlsp)',
    "Ignore 'negative' in this file (vqlsp)",
    "Ignore 'negative' in the workspace (.vqlsp.json) (vqlsp)",
  ];
  /** Opens the quick fixes at the problem at `where`, checks they are the three, runs `title`. */
  const applyQuickFix = async (where: { line: number; column: number }, title: string) => {
    await workbench.goTo(where.line, where.column + 4);
    const titles = await workbench.quickFixes((ts) => ts.includes(title));
    assert.deepEqual(titles.filter((t) => t.endsWith('(vqlsp)')), QUICK_FIXES);
    await workbench.chooseQuickFix(title);
  };

  /** Pastes Machine settings with `command` into the open settings.json and saves them. */
  const setServerCommand = async (command: string[]) => {
    const settings = { 'vqlsp.serverCommand': command };
    await workbench.replaceText(JSON.stringify(settings, null, 2), 'paste');
    const file = path.join(sandbox.userData, 'Machine', 'settings.json');
    await until('the settings to be saved', () => {
      const saved = fs.readFileSync(file, 'utf8');
      return saved === JSON.stringify(settings, null, 2) ? true : undefined;
    }, TIMEOUT_MS, () => fs.readFileSync(file, 'utf8'));
  };
  const servers = () => (server?.processes() ?? []).filter(isVqlspServer);
  const oneServer = (what: string, not?: number) =>
    until(what, () => {
      const found = servers().filter((p) => p.pid !== not);
      return found.length === 1 ? found[0].pid : undefined;
    }, TIMEOUT_MS, () => JSON.stringify(servers()));

  /** A step of the session: skipped once an earlier one failed (each would wait out its deadline). */
  function step(name: string, body: () => Promise<void>): void {
    it(name, async (t: TestContext) => {
      if (broken !== undefined) {
        t.skip(`an earlier step failed: ${broken}`);
        return;
      }
      try {
        await body();
      } catch (error) {
        broken = name;
        const slug = name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
        await workbench.screenshot(path.join(shots, `failure-${slug}.png`)).catch(() => undefined);
        throw new Error(`step failed: ${name} :: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    });
  }

  before(async () => {
    try {
      await setUp();
    } catch (error) {
      broken = 'the set-up';
      throw error;
    }
  });

  async function setUp(): Promise<void> {
    const root = process.env.VQLSP_E2E_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vqlsp-e2e-'));
    const codeServer = required(
      'code-server',
      process.env.VQLSP_CODE_SERVER ?? path.join(ROOT, '.venv', 'code-server', 'node_modules', '.bin', 'code-server'),
      'scripts/setup.sh installs it with the dev extras (./scripts/test)',
    );
    const chromiumPath = required(
      'Chromium',
      process.env.VQLSP_CHROMIUM ?? findExecutable('chromium'),
      'install Debian\'s chromium (scripts/setup.sh does) or set VQLSP_CHROMIUM',
    );
    const command = serverCommand();
    required('the vqlsp server', command[0], 'run ./scripts/test or ./scripts/demo to build .venv, or set VQLSP_SERVER_COMMAND');
    required('the .vsix', VSIX, 'run `npm run package` first');

    // The converted weights of the default model stay in the user's cache: the sandbox's
    // XDG_CACHE_HOME would make every run convert them again.
    const cache = process.env.VQLSP_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'vqlsp');
    sandbox = makeSandbox(root, { ...process.env, VQLSP_CACHE: cache, TOKENIZERS_PARALLELISM: 'false' });
    shots = path.join(root, 'screenshots');
    fs.mkdirSync(shots, { recursive: true });
    console.log(`# real VS Code run in ${root}`);
    for (const [name, text] of Object.entries(FILES)) {
      fs.writeFileSync(path.join(sandbox.folder, name), text);
    }
    writeSettings(sandbox, 'Machine', { 'vqlsp.serverCommand': command });
    writeSettings(sandbox, 'User', {
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'extensions.ignoreRecommendations': true,
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      // Typed text must land as typed: no suggestion accepted by Enter.
      'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
      'editor.acceptSuggestionOnEnter': 'off',
      // Every opened file keeps its tab (a preview tab would be replaced, and its document
      // closed, by the next file opened).
      'workbench.editor.enablePreview': false,
      'workbench.editor.enablePreviewFromQuickOpen': false,
    });

    const installed = installExtension(codeServer, sandbox, VSIX);
    assert.match(installed, /Extension 'vqlsp\.vsix' was successfully installed/, installed);
    const started = await CodeServer.start(codeServer, sandbox, path.join(root, 'code-server.log'), TIMEOUT_MS);
    server = started.server;
    browser = await chromium.launch({
      executablePath: chromiumPath,
      // Chromium's sandbox refuses to run as root.
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    workbench = await Workbench.open(browser, started.url);
  }

  after(async () => {
    await browser?.close();
    await server?.killAll();
    if (broken !== undefined && server !== undefined) {
      console.log(`# code-server log (${sandbox.root}/code-server.log), last lines:\n${server.log().slice(-6000)}`);
    }
  });

  step('a Markdown file gets the label of the real server on the default model in the status bar', async () => {
    await workbench.openFile('business.md');
    const [, percent] = await workbench.waitForStatus(/^business (\d+)%$/, FIRST_RESULT_MS);
    assert.ok(Number(percent) >= 50, `business ${percent}%`);
    vqlspPid = await oneServer('one `vqlsp serve`, started by the extension');
    const detail = await workbench.statusDetail();
    assert.match(detail, /vqlsp: business \(\d+\.\d%\)/, 'the tooltip names the label');
    assert.match(detail, /sports: \d+\.\d%/, 'and lists every probability');
  });

  step("the server's stderr reaches the vqlsp output channel once", async () => {
    // vscode-languageclient copies the server's stderr into the channel; the extension once
    // copied it too, so every line of the server's log showed twice.
    const channel = () =>
      filesUnder(path.join(sandbox.userData, 'logs'), /output_logging_.*vqlsp.*\.log$/)
        .map((file) => fs.readFileSync(file, 'utf8'))
        .join('');
    const stderrLine = 'INFO vqlsp.lsp.core: model ready';
    const text = await until('the server\'s "model ready" log line in the output channel',
      () => (channel().includes(stderrLine) ? channel() : undefined), TIMEOUT_MS, () => channel().slice(-3000));
    assert.equal(text.split(stderrLine).length - 1, 1, text.slice(-3000));
  });

  step('the span the sentiment head flags is in the Problems panel', async () => {
    await workbench.showProblems();
    const where = lineAndColumn(BUSINESS, BUSINESS_NEGATIVE);
    const problems = await workbench.waitForProblems(
      `a vqlsp problem at ${JSON.stringify(where)}`,
      (ps) => ps.some((p) => isNegativeAt(p, where)),
    );
    assert.deepEqual(problems.filter((p) => p.source === 'vqlsp').length, 1, JSON.stringify(problems));
    await workbench.screenshot(path.join(shots, 'business-label-and-diagnostic.png'));
  });

  step('typing a sports report over it changes the label, and the diagnostics follow the new text', async () => {
    await workbench.replaceText(SPORTS, 'typing');
    // What reached the document is what was typed (the file is saved after the last key).
    await until('the typed text to be saved', () => (fs.readFileSync(article(), 'utf8') === SPORTS ? true : undefined),
      TIMEOUT_MS, () => JSON.stringify(fs.readFileSync(article(), 'utf8')));
    await workbench.waitForStatus(/^sports \d+%$/);
    const where = lineAndColumn(SPORTS, SPORTS_NEGATIVE);
    await workbench.waitForProblems(
      `only the sports report's negative sentence, at ${JSON.stringify(where)}`,
      (ps) => ps.filter((p) => p.source === 'vqlsp').length === 1 && ps.some((p) => isNegativeAt(p, where)),
    );
    const version = /version (\d+)/.exec(await workbench.statusDetail());
    assert.ok(version && Number(version[1]) > 1, `the result is for an edited version: ${await workbench.statusDetail()}`);
    await workbench.screenshot(path.join(shots, 'sports-after-typing.png'));
  });

  step('a diagnostic offers the three quick fixes; "Ignore this sentence" silences it', async () => {
    const where = lineAndColumn(SPORTS, SPORTS_NEGATIVE);
    await workbench.goTo(where.line, where.column + 4);
    const titles = await workbench.quickFixes((ts) => ts.some((t) => t.startsWith('Ignore this sentence')));
    assert.deepEqual(titles.filter((t) => t.endsWith('(vqlsp)')), QUICK_FIXES);
    await workbench.screenshot(path.join(shots, 'quick-fixes.png'));
    await workbench.chooseQuickFix(QUICK_FIXES[0]);
    await workbench.waitForProblems('no vqlsp problem left', (ps) => vqlspProblems(ps).length === 0);
    await workbench.page.keyboard.press('Control+S');
    const ignored = `${SPORTS_NEGATIVE}, and their miserable defence collapsed again. <!-- vqlsp-ignore -->`;
    await until('the comment to be saved after the sentence', () => (fs.readFileSync(article(), 'utf8').includes(ignored) ? true : undefined),
      TIMEOUT_MS, () => JSON.stringify(fs.readFileSync(article(), 'utf8')));
    await workbench.waitForStatus(/^sports \d+%$/);
    await workbench.screenshot(path.join(shots, 'action-1-ignore-sentence.png'));
  });

  step(`"Ignore 'negative' in this file" adds the label comment to ${LABEL_IN_FILE} and silences the label there`, async () => {
    await workbench.openFile(LABEL_IN_FILE);
    await workbench.waitForStatus(/^business \d+%$/);
    const where = lineAndColumn(BUSINESS, BUSINESS_NEGATIVE);
    await workbench.waitForProblems(
      `only ${LABEL_IN_FILE}'s negative sentence, at ${JSON.stringify(where)}`,
      (ps) => vqlspProblems(ps).length === 1 && ps.some((p) => isNegativeAt(p, where)),
    );
    await applyQuickFix(where, QUICK_FIXES[1]);
    await workbench.page.keyboard.press('Control+S');
    const expected = `${BUSINESS}\n<!-- vqlsp-ignore-label: negative -->\n`;
    await until(`the label comment to be saved at the end of ${LABEL_IN_FILE}`,
      () => (saved(LABEL_IN_FILE) === expected ? true : undefined), TIMEOUT_MS, () => JSON.stringify(saved(LABEL_IN_FILE)));
    await workbench.waitForProblems('no vqlsp problem left', (ps) => vqlspProblems(ps).length === 0);
    await workbench.waitForStatus(/^business \d+%$/);
    await workbench.screenshot(path.join(shots, 'action-2-ignore-label-in-file.png'));
  });

  step(`"Ignore 'negative' in the workspace" writes .vqlsp.json and silences the label in ${Object.keys(WORKSPACE_FILES).join(' and ')}`, async () => {
    const names = Object.keys(WORKSPACE_FILES);
    for (const name of names) {
      await workbench.openFile(name);
    }
    // The active editor is the last one opened: the sports report.
    await workbench.waitForStatus(/^sports \d+%$/);
    const inBusiness = lineAndColumn(BUSINESS, BUSINESS_NEGATIVE);
    const inSports = lineAndColumn(SPORTS, SPORTS_NEGATIVE);
    await workbench.waitForProblems(
      `the negative sentence of each of ${names.join(', ')} (and no other vqlsp problem)`,
      (ps) => vqlspProblems(ps).length === 2 && ps.some((p) => isNegativeAt(p, inBusiness)) && ps.some((p) => isNegativeAt(p, inSports)),
    );
    await applyQuickFix(inSports, QUICK_FIXES[2]);
    const ignoreFile = path.join(sandbox.folder, '.vqlsp.json');
    const written = () => (fs.existsSync(ignoreFile) ? fs.readFileSync(ignoreFile, 'utf8') : '(none)');
    await until('.vqlsp.json at the workspace root, ignoring negative', () => {
      try {
        return JSON.stringify(JSON.parse(written())) === JSON.stringify({ ignoreLabels: ['negative'] }) ? true : undefined;
      } catch {
        return undefined; // not there yet, or being written
      }
    }, TIMEOUT_MS, written);
    await workbench.waitForProblems(`no vqlsp problem left in ${names.join(' or ')}`, (ps) => vqlspProblems(ps).length === 0);
    for (const [name, text] of Object.entries(WORKSPACE_FILES)) {
      assert.equal(saved(name), text, `${name} is not edited`);
    }
    await workbench.waitForStatus(/^sports \d+%$/);
    await workbench.screenshot(path.join(shots, 'action-3-ignore-label-in-workspace.png'));
  });

  step('"vqlsp: Restart Server" replaces the server, and the label comes back', async () => {
    const old = vqlspPid;
    await workbench.runCommand('vqlsp: Restart Server');
    vqlspPid = await oneServer('a new `vqlsp serve` instead of the old one', old);
    // The client stops the old server (shutdown, exit) without waiting for the process to end.
    await until('the old server to exit', () => (isAlive(old) ? undefined : true));
    await workbench.waitForStatus(/^sports \d+%$/);
  });

  step('a bad vqlsp.serverCommand gives the extension\'s error message; a good one brings the server back', async () => {
    const old = vqlspPid;
    // Through the settings editor of the remote (Machine) settings: a file rewritten behind
    // VS Code's back is not reliably picked up.
    await workbench.runCommand('Preferences: Open Remote Settings (JSON)');
    await setServerCommand(BAD_COMMAND);
    const message = await workbench.waitForNotification(/^vqlsp: the language server cannot start/);
    assert.ok(
      message.includes(`\`${BAD_COMMAND[0]}\` (from \`vqlsp.serverCommand\`) does not exist or is not executable.`),
      message,
    );
    await until('the old server to exit', () => (isAlive(old) ? undefined : true));
    assert.deepEqual(servers(), [], 'no server runs');
    assert.equal(await workbench.statusText(), 'vqlsp');
    assert.match(await workbench.statusDetail(), /^error vqlsp, vqlsp: the language server cannot start/, 'an error icon, the message as tooltip');
    await workbench.screenshot(path.join(shots, 'bad-server-command.png'));

    await setServerCommand(serverCommand());
    vqlspPid = await oneServer('a `vqlsp serve` again');
    await workbench.openFile('business.md');
    await workbench.waitForStatus(/^sports \d+%$/);
  });

  step('the server exits when the window closes and code-server stops', async () => {
    await workbench.page.close();
    const current = server;
    assert.ok(current);
    current.terminate();
    await until('`vqlsp serve` to exit', () => (isAlive(vqlspPid) ? undefined : true), TIMEOUT_MS,
      () => JSON.stringify(current.processes()));
  });
});
