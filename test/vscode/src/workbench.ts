/**
 * The VS Code workbench as a test sees it: a page object over the DOM of VS Code 1.100 (the one in
 * code-server 4.100.3). Every wait is a bounded wait on a selector; nothing sleeps.
 *
 * The selectors are VS Code's own class names and ARIA roles. They are not an API: when
 * code-server is upgraded, a failing wait here names the selector to update.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';

export interface WorkbenchOptions {
  /** Screenshots go here, named NN-<name>.png in the order they were taken. */
  readonly artifactsDir: string;
  /** Bound of one ordinary wait (a view opening, a command running). */
  readonly timeoutMs?: number;
  /** Bound of the first load: the workbench downloads and evaluates ~15 MB of JavaScript. */
  readonly loadTimeoutMs?: number;
}

export class Workbench {
  private shots = 0;
  private readonly timeoutMs: number;
  private readonly loadTimeoutMs: number;

  constructor(
    readonly page: Page,
    private readonly options: WorkbenchOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 20_000;
    this.loadTimeoutMs = options.loadTimeoutMs ?? 120_000;
  }

  /** Loads the workbench at `url` and waits until it can be used. */
  async open(url: string): Promise<void> {
    await this.page.goto(url, { timeout: this.loadTimeoutMs });
    await this.waitReady();
  }

  /**
   * Ready: the activity bar has its items, the status bar is drawn, and the Explorer shows the
   * opened folder, which happens only once the remote (server) connection is up.
   */
  async waitReady(): Promise<void> {
    const wait = { state: 'visible' as const, timeout: this.loadTimeoutMs };
    await this.page.locator('.monaco-workbench').waitFor(wait);
    await this.activityBarItem('Explorer').waitFor(wait);
    await this.page.locator('.part.statusbar').waitFor(wait);
    await this.page.locator('.explorer-folders-view, .explorer-viewlet .pane-header').first().waitFor(wait);
  }

  /**
   * The activity-bar entry whose title starts with `title` ("Explorer (Ctrl+Shift+E)"). The title
   * is on the entry's link: the list item carries an aria-label only while it has keyboard focus.
   */
  activityBarItem(title: string): Locator {
    return this.page
      .locator('.part.activitybar li.action-item[role="tab"]')
      .filter({ has: this.page.locator(`a.action-label[aria-label^="${cssString(title)}"]`) })
      .first();
  }

  /** The side bar, where a view container opened from the activity bar is shown. */
  sideBar(): Locator {
    return this.page.locator('.part.sidebar');
  }

  /**
   * The side bar's title: the open view container's name (VS Code shows it in capitals), or
   * "Container: View" when the container has a single view.
   */
  sideBarTitle(): Locator {
    return this.sideBar().locator('.composite.title .title-label h2');
  }

  /**
   * Clicks the container's activity-bar entry and waits until its side bar is shown. An extension's
   * entry appears only once the extension host has scanned the extensions, which can be well after
   * the workbench is ready, so its appearance gets the load bound.
   */
  async openViewContainer(title: string): Promise<void> {
    const item = this.activityBarItem(title);
    await item.waitFor({ state: 'visible', timeout: this.loadTimeoutMs });
    if ((await item.getAttribute('aria-selected')) !== 'true') {
      await item.click({ timeout: this.timeoutMs });
    }
    await this.sideBarTitle()
      .filter({ hasText: new RegExp(`^${escapeRegExp(title)}(:|$)`, 'i') })
      .waitFor({ state: 'visible', timeout: this.timeoutMs });
  }

  /** The pane of one view in the side bar, found by its header (the view's name). */
  viewPane(name: string): Locator {
    return this.sideBar()
      .locator('.pane')
      .filter({ has: this.page.locator(`.pane-header[aria-label^="${cssString(name)}"]`) })
      .first();
  }

  /**
   * Expands the named view's pane if collapsed; returns its body. The only view of a container
   * has its header hidden (its name is in the side bar's title) and is always expanded.
   */
  async expandView(name: string): Promise<Locator> {
    const pane = this.viewPane(name);
    const header = pane.locator('.pane-header').first();
    await header.waitFor({ state: 'attached', timeout: this.timeoutMs });
    if ((await header.isVisible()) && (await header.getAttribute('aria-expanded')) !== 'true') {
      await header.click({ timeout: this.timeoutMs });
    }
    const body = pane.locator('.pane-body').first();
    await body.waitFor({ state: 'visible', timeout: this.timeoutMs });
    return body;
  }

  /**
   * Runs a command by its palette label ("Telepresence: Show Version"): F1, type the label, pick
   * the row with exactly that label.
   */
  async runCommand(label: string): Promise<void> {
    await this.page.locator('.monaco-workbench').focus();
    await this.page.keyboard.press('F1');
    const widget = this.page.locator('.quick-input-widget');
    const input = widget.locator('.quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: this.timeoutMs });
    // F1 opens the palette with ">" typed; fill() replaces it, so it is typed again.
    await input.fill(`>${label}`);
    const row = widget.locator(`.monaco-list-row[aria-label^="${cssString(label)}"]`).first();
    await row.waitFor({ state: 'visible', timeout: this.timeoutMs });
    await row.click({ timeout: this.timeoutMs });
    await widget.waitFor({ state: 'hidden', timeout: this.timeoutMs });
  }

  /** A notification toast whose message contains `text`; waits until it is shown. */
  async waitForNotification(text: string | RegExp): Promise<Locator> {
    const toast = this.page.locator('.notifications-toasts .notification-toast').filter({ hasText: text }).first();
    await toast.waitFor({ state: 'visible', timeout: this.timeoutMs });
    return toast;
  }

  /** Saves a screenshot of the whole page as NN-<name>.png in the artifacts folder; returns its path. */
  async screenshot(name: string): Promise<string> {
    await mkdir(this.options.artifactsDir, { recursive: true });
    this.shots++;
    const path = join(this.options.artifactsDir, `${String(this.shots).padStart(2, '0')}-${name}.png`);
    // Animations finished at once: a toast caught mid-fade-in would be a pale, unreadable picture.
    await this.page.screenshot({ path, timeout: this.timeoutMs, animations: 'disabled' });
    return path;
  }
}

/** Escapes a value for a double-quoted CSS attribute selector. */
function cssString(value: string): string {
  return value.replace(/["\\]/g, '\\$&');
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
