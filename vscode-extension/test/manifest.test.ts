/**
 * The manifest and the composition root agree: every command a menu, a welcome link or the
 * status bar names is declared, and every declared command is registered by activate().
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { statusBarView } from '../src/status-bar.js';
import { outboundUp } from './fixtures/fake-core.js';

const HERE = dirname(fileURLToPath(import.meta.url));
interface Manifest {
  main: string;
  files: string[];
  activationEvents: string[];
  contributes: {
    commands: Array<{ command: string }>;
    menus: Record<string, Array<{ command: string }>>;
    viewsWelcome: Array<{ contents: string }>;
    views: Record<string, Array<{ id: string }>>;
    debuggers: Array<{ type: string }>;
    configuration: { properties: Record<string, unknown> };
  };
}
const manifest = JSON.parse(readFileSync(join(HERE, '..', 'package.json'), 'utf8')) as Manifest;
const extensionSource = readFileSync(join(HERE, '..', 'src', 'extension.ts'), 'utf8');
const declared = new Set(manifest.contributes.commands.map((c) => c.command));
const registered = new Set([...extensionSource.matchAll(/registerCommand\('([^']+)'/g)].map((m) => m[1]));

t.test('every declared command is registered by activate()', (t) => {
  t.same([...declared].filter((c) => !registered.has(c)), []);
  t.same([...registered].filter((c) => c !== undefined && !declared.has(c)), [], 'and nothing is registered that is not declared');
  t.end();
});

t.test('menus and welcome links name declared commands', (t) => {
  for (const [menu, entries] of Object.entries(manifest.contributes.menus)) {
    for (const e of entries) t.ok(declared.has(e.command), `${menu}: ${e.command}`);
  }
  for (const w of manifest.contributes.viewsWelcome) {
    for (const m of w.contents.matchAll(/\(command:([\w.]+)\)/g)) t.ok(declared.has(m[1] ?? ''), `welcome link ${m[1] ?? ''}`);
  }
  t.end();
});

t.test('the status bar runs declared commands (or the view focus VS Code adds)', (t) => {
  for (const phase of ['connected', 'connecting', 'no-manager', 'disconnected'] as const) {
    const { command } = statusBarView(phase, 'ctx', 0);
    t.ok(declared.has(command) || command === 'telepresence.workloads.focus', `${phase}: ${command}`);
  }
  const failed = statusBarView('connected', 'ctx', 0, { ...outboundUp(), state: 'failed' }).command;
  t.ok(declared.has(failed), `outbound failed: ${failed}`);
  t.end();
});

t.test('the view, the debugger type and the settings the code reads are contributed', (t) => {
  t.same(manifest.contributes.views['telepresence']?.map((v) => v.id), ['telepresence.workloads']);
  t.ok(extensionSource.includes("registerTreeDataProvider('telepresence.workloads'"));
  t.same(manifest.contributes.debuggers.map((d) => d.type), ['telepresence']);
  t.ok(extensionSource.includes("registerDebugConfigurationProvider('telepresence'"));
  const hostSource = readFileSync(join(HERE, '..', 'src', 'vscode-host.ts'), 'utf8');
  for (const m of hostSource.matchAll(/c\.get<\w+>\('([\w.]+)'/g)) {
    t.ok(Object.hasOwn(manifest.contributes.configuration.properties, `telepresence.${m[1] ?? ''}`), `telepresence.${m[1] ?? ''} is declared`);
  }
  t.end();
});

t.test('the bundles the extension starts ship in the .vsix', (t) => {
  t.equal(manifest.main, './dist/extension.js');
  for (const file of ['dist/extension.js', 'dist/daemon.js', 'dist/kube-helper.js']) t.ok(manifest.files.includes(file), file);
  t.ok(manifest.activationEvents.includes('onDebug'), 'activated before any debug session, so the * provider sees it');
  t.end();
});
