import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DISTRIBUTOR_SETTINGS } from '../../src/distributor/config.js';
import { GATEWAY_SETTINGS } from '../../src/gateway/config.js';
import { SHOP_COMPONENTS } from '../../src/launcher/components.js';
import { configurationMarkdown, withConfigurationTable } from '../../src/launcher/config-docs.js';
import { serviceSettings } from '../../src/services/common/service-config.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';

describe("the README's configuration table", () => {
  it('is the one the settings tables make (run `npm run docs:config` after changing a setting)', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(withConfigurationTable(readme)).toBe(readme);
  });

  it("says where components listen when --host is not given, as their settings' defaults are", () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const settings of [
      DISTRIBUTOR_SETTINGS,
      ...SHOP_SERVICES.map((service) => serviceSettings(service)),
    ]) {
      expect(readme).toContain(`listen on ${settings.host.default} unless \`--host\` says otherwise`);
    }
    expect(readme).toContain(`the gateway's REST port on ${GATEWAY_SETTINGS.host.default}`);
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
