import { existsSync } from 'node:fs';

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
