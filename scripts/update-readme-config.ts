// `npm run docs:config`: rewrites the README's configuration table from the components' settings
// tables (src/launcher/components.ts). A test fails when the README and the tables disagree.
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigurationTable } from '../src/launcher/config-docs.js';

writeFileSync('README.md', withConfigurationTable(readFileSync('README.md', 'utf8')));
