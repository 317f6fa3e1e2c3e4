/**
 * Debian's Chromium driven by playwright-core (the library only: its browser downloads cannot run
 * here). playwright-core's version is pinned to the one whose bundled Chromium matches Debian's
 * major version (1.64 <-> Chromium 156), since the DevTools protocol drifts between releases.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's `chromium` package (installed by scripts/install-code-server.sh). */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless and quiet: no GPU, sandbox (we run as root), first-run UI or calls home. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface Browser {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Closes Chromium and removes its user-data-dir. Safe to call twice. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  readonly executablePath?: string;
  /** The workbench is laid out for this; screenshots have this size. */
  readonly viewport?: { readonly width: number; readonly height: number };
  /** Bounds Chromium's start. */
  readonly timeoutMs?: number;
}

/** Launches Chromium with a fresh user-data-dir and returns its one page. */
export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  const executablePath = options.executablePath ?? CHROMIUM;
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing; run: bash scripts/install-code-server.sh (it installs Debian's chromium)`);
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'tp-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      chromiumSandbox: false,
      args: [...CHROMIUM_ARGS],
      viewport: { width: options.viewport?.width ?? 1440, height: options.viewport?.height ?? 900 },
      timeout: options.timeoutMs ?? 60_000,
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  let closed = false;
  return {
    page,
    context,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await context.close();
      } finally {
        await rm(userDataDir, { recursive: true, force: true });
      }
    },
  };
}
