#!/usr/bin/env node
// npx opsbot ...: the CLI, running the TypeScript sources with Node's built-in type stripping.
import { exitWhenFlushed, runCli } from "../src/cli.ts";

await exitWhenFlushed(await runCli(process.argv.slice(2)));
