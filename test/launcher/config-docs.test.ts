import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SHOP_COMPONENTS } from '../../src/launcher/components.js';
import { configurationMarkdown, withConfigurationTable } from '../../src/launcher/config-docs.js';

describe("the README's configuration table", () => {
  it('is the one the settings tables make (run `npm run docs:config` after changing a setting)', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(withConfigurationTable(readme)).toBe(readme);
  });

  it('names every flag and variable of every component', () => {
    const markdown = configurationMarkdown();
    for (const { settings } of SHOP_COMPONENTS) {
      for (const spec of Object.values(settings)) {
        if (spec.flag) expect(markdown).toContain(`\`--${spec.flag}\``);
        if (spec.env) expect(markdown).toContain(`\`${spec.env}\``);
      }
    }
  });
});
