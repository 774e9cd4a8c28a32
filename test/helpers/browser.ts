import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

/** Debian's Chromium, driven by playwright-core (no browser download). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Whether it is installed (`.ci/run` installs it; under CI=true a missing one is a failure). */
export const haveChromium = existsSync(CHROMIUM);

/**
 * Launch flags for a headless run on a machine with no network: without the background-networking
 * ones, Chromium keeps trying hosts it cannot reach.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless Chromium on a profile of its own, and how to close it and remove that profile. */
export interface ChromiumProfile {
  readonly context: BrowserContext;
  /** The first page of the context (a persistent context opens with one). */
  readonly page: Page;
  /** Closes the browser, then removes its profile folder. */
  close(): Promise<void>;
}

/**
 * Launches Chromium on a fresh profile folder (named after `name` in the system's temporary folder),
 * with CHROMIUM_ARGS and any `extraArgs`. A persistent context, as a person's browser: its profile is
 * removed on close, so that runs share nothing.
 */
export async function openChromium(
  name: string,
  extraArgs: readonly string[] = [],
): Promise<ChromiumProfile> {
  const profile = mkdtempSync(join(tmpdir(), `shop-chromium-${name}-`));
  let context: BrowserContext | undefined;
  let page: Page;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
    });
    page = context.pages()[0] ?? (await context.newPage());
  } catch (error) {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  return {
    context,
    page,
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}
