#!/usr/bin/env node
// npx opsbot ...: the CLI, running the TypeScript sources with Node's built-in type stripping.
import { runCli } from "../src/cli.ts";

process.exitCode = await runCli(process.argv.slice(2));
