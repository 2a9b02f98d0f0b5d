import { fileURLToPath } from "node:url";
import ts from "typescript";
import { defineConfig } from "vitest/config";

/** The workspace's `@tapegrad/*` imports resolve to the sources, as tsconfig.json's paths say (one list for tsc, tsx and vitest). */
function sourceAliases(): { find: RegExp; replacement: string }[] {
  const file = fileURLToPath(new URL("./tsconfig.json", import.meta.url));
  const { config, error } = ts.readConfigFile(file, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, "\n"));
  const paths: Record<string, string[]> = config.compilerOptions.paths;
  return Object.entries(paths).map(([name, [target]]) => ({
    find: new RegExp(`^${name.replace(/[/.]/g, "\\$&")}$`),
    replacement: fileURLToPath(new URL(target, import.meta.url)),
  }));
}

export default defineConfig({
  resolve: { alias: sourceAliases() },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
