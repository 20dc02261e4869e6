#!/usr/bin/env node
// The `ngi` command: the CLI of src/, given the adapters of adapters/ (src/ never imports them).
import { adapters } from './adapters.js';
import { main } from '../src/cli/main.js';

const code = await main(process.argv.slice(2), { adapters });
if (code !== undefined) process.exit(code);
