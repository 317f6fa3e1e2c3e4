/**
 * The VS Code workbench as a test sees it: a page object over the DOM of VS Code 1.100 (the one in
 * code-server 4.100.3). Every wait is a bounded wait on a selector; nothing sleeps.
 *
 * The selectors are VS Code's own class names and ARIA roles. They are not an API: when
 * code-server is upgraded, a failing wait here names the selector to update.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FrameLocator, Locator, Page } from 'playwright-core';

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

  /**
   * Drags the side bar's edge to make it `width` pixels wide, so that tree rows and their
   * descriptions fit in screenshots.
   */
  async resizeSideBar(width: number): Promise<void> {
    const box = await this.sideBar().boundingBox({ timeout: this.timeoutMs });
    if (box === null) throw new Error('the side bar is not shown');
    const y = box.y + box.height / 2;
    // The sash lies on the side bar's right edge; a drag on it resizes the side bar.
    await this.page.mouse.move(box.x + box.width, y);
    await this.page.mouse.down();
    await this.page.mouse.move(box.x + width, y, { steps: 5 });
    await this.page.mouse.up();
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
   * the row with exactly that label. With `opensPicker`, the command's own quick pick is left
   * open for the caller to answer.
   */
  async runCommand(label: string, options: { opensPicker?: boolean } = {}): Promise<void> {
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
    // A command that asks something next (a quick pick of its own) keeps the widget open.
    if (options.opensPicker !== true) await widget.waitFor({ state: 'hidden', timeout: this.timeoutMs });
  }

  /** A notification toast whose message contains `text`; waits until it is shown. */
  async waitForNotification(text: string | RegExp): Promise<Locator> {
    const toast = this.page.locator('.notifications-toasts .notification-toast').filter({ hasText: text }).first();
    await toast.waitFor({ state: 'visible', timeout: this.timeoutMs });
    return toast;
  }

  /** A button of a view's welcome content (a `viewsWelcome` link rendered as a button). */
  welcomeButton(body: Locator, text: string): Locator {
    return body.locator('.welcome-view-content .monaco-button').filter({ hasText: new RegExp(`^${escapeRegExp(text)}$`) }).first();
  }

  /**
   * The row of a tree whose label is exactly `label` (the description beside it is not part of
   * the label); `within` narrows the search to one view's body.
   */
  treeRow(within: Locator, label: string): Locator {
    return within
      .locator('.monaco-list-row')
      .filter({ has: this.page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) })
      .first();
  }

  /** Expands a collapsed tree row by clicking its twistie; a no-op when it is expanded. */
  async expandRow(row: Locator): Promise<void> {
    await row.waitFor({ state: 'visible', timeout: this.timeoutMs });
    if ((await row.getAttribute('aria-expanded')) === 'false') {
      await row.locator('.monaco-tl-twistie').click({ timeout: this.timeoutMs });
    }
    await row.and(this.page.locator('[aria-expanded="true"]')).waitFor({ state: 'visible', timeout: this.timeoutMs });
  }

  /**
   * Right-clicks `target` and chooses the context-menu entry whose text is `item`. A row that the
   * tree re-renders under the pointer (the cluster changed) can swallow the right-click, so the
   * menu gets a few bounded attempts to open.
   */
  async contextMenu(target: Locator, item: string): Promise<void> {
    const entry = this.page
      .locator('.context-view .monaco-menu .action-item')
      .filter({ has: this.page.locator('.action-label', { hasText: new RegExp(`^${escapeRegExp(item)}$`) }) })
      .first();
    for (let attempt = 1; ; attempt++) {
      await target.click({ button: 'right', timeout: this.timeoutMs });
      try {
        await entry.waitFor({ state: 'visible', timeout: MENU_OPEN_MS });
        break;
      } catch (err) {
        if (attempt >= MENU_ATTEMPTS) throw err;
        await this.page.keyboard.press('Escape');
      }
    }
    // Hover focuses the entry and Enter runs it: a click can land while the menu still ignores
    // the mouse (it does so briefly after opening, so that the right-click's own mouseup does
    // not choose an entry).
    await entry.hover({ timeout: this.timeoutMs });
    await entry.and(this.page.locator('.focused')).waitFor({ state: 'visible', timeout: this.timeoutMs });
    await this.page.keyboard.press('Enter');
    await this.page.locator('.context-view .monaco-menu').waitFor({ state: 'hidden', timeout: this.timeoutMs });
  }

  /**
   * Answers the input box (showInputBox) whose prompt matches `prompt` with `value` and Enter. The
   * workbench reuses one widget for consecutive input boxes, so the prompt tells them apart.
   */
  async answerInput(prompt: RegExp, value: string): Promise<void> {
    const widget = this.page.locator('.quick-input-widget');
    await widget.locator('.quick-input-message').filter({ hasText: prompt }).waitFor({ state: 'visible', timeout: this.timeoutMs });
    const input = widget.locator('.quick-input-box input');
    await input.fill(value);
    await input.press('Enter');
  }

  /** Picks the row of the open quick pick whose label starts with `label`. */
  async pickQuick(label: string): Promise<void> {
    const widget = this.page.locator('.quick-input-widget');
    const row = widget.locator(`.monaco-list-row[aria-label^="${cssString(label)}"]`).first();
    await row.waitFor({ state: 'visible', timeout: this.timeoutMs });
    await row.click({ timeout: this.timeoutMs });
  }

  /** Opens a workspace file by name through Quick Open and waits for its editor tab. */
  async openFile(name: string): Promise<void> {
    await this.page.locator('.monaco-workbench').focus();
    await this.page.keyboard.press('Control+P');
    const widget = this.page.locator('.quick-input-widget');
    const input = widget.locator('.quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: this.timeoutMs });
    await input.fill(name);
    await widget.locator(`.monaco-list-row[aria-label^="${cssString(name)}"]`).first().waitFor({ state: 'visible', timeout: this.timeoutMs });
    await input.press('Enter');
    await this.page.locator(`.tabs-container .tab.active[aria-label^="${cssString(name)}"]`).waitFor({ state: 'visible', timeout: this.timeoutMs });
  }

  /** Moves the active editor's cursor to `line` with Go to Line. */
  async goToLine(line: number): Promise<void> {
    await this.page.locator('.editor-instance .monaco-editor textarea').first().focus();
    await this.page.keyboard.press('Control+G');
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: this.timeoutMs });
    await input.fill(`:${line}`);
    await input.press('Enter');
    await this.page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: this.timeoutMs });
  }

  /** The breakpoint glyphs in the active editor's margin. */
  breakpointGlyphs(): Locator {
    return this.page.locator('.editor-instance .monaco-editor .glyph-margin-widgets .codicon-debug-breakpoint');
  }

  /** The line (1-based) of the Call Stack's top frame, as its row shows it ("server.js 7:5"). */
  async topFrameLine(): Promise<number> {
    const text = await this.page.locator('.debug-call-stack .stack-frame .line-number').first().innerText({ timeout: this.timeoutMs });
    return Number(/^(\d+)/.exec(text.trim())?.[1] ?? 'NaN');
  }

  /** The states the Call Stack shows beside its sessions and threads ("Paused on breakpoint", "Running"). */
  callStackStates(): Locator {
    return this.page.locator('.debug-call-stack .state.label');
  }

  /**
   * The content of the webview panel whose tab is active: VS Code puts a webview's page in an
   * inner iframe (#active-frame) of its own iframe (.webview.ready), one per open webview.
   */
  activeWebview(): FrameLocator {
    return this.page.locator('iframe.webview.ready:visible').last().contentFrame().locator('iframe#active-frame').contentFrame();
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

/** A context menu opens within a few hundred milliseconds; three tries cover a re-rendered row. */
const MENU_OPEN_MS = 5_000;
const MENU_ATTEMPTS = 3;

/** Escapes a value for a double-quoted CSS attribute selector. */
function cssString(value: string): string {
  return value.replace(/["\\]/g, '\\$&');
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A suite's steps over the workbench its set-up opens: `step` runs one and, when it fails, keeps
 * a screenshot of what the page showed before failing as before. `current` reads the suite's
 * workbench, undefined until (or unless) the set-up opened it.
 */
export function workbenchSteps(current: () => Workbench | undefined): {
  step: (name: string, body: (wb: Workbench) => Promise<void>) => Promise<void>;
} {
  const step = async (name: string, body: (wb: Workbench) => Promise<void>): Promise<void> => {
    const wb = current();
    if (!wb) throw new Error('the workbench did not open (see the set-up failure above)');
    try {
      await body(wb);
    } catch (err) {
      await wb.screenshot(`FAILED-${name}`).catch(() => undefined);
      throw err;
    }
  };
  return { step };
}
