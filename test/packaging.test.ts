/**
 * The packages' manifests against their sources: the workspace's source mapping matches the exports, the
 * browser-safe entries import nothing from Node, sideEffects names every module that runs code on import.
 * What a user gets from the packed tarballs is tested by scripts/consumer-test.mjs.
 */
import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { Tensor } from "../packages/autograd/src/index.ts";
import { nn } from "@tapegrad/nn";
import { PUBLISHED } from "../scripts/packages.mjs";

const root = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(root, path), "utf8");

interface Manifest {
  name: string;
  exports: Record<string, string | { types: string; import: string }>;
  sideEffects: boolean | string[];
  files: string[];
}
const packages = PUBLISHED.map((dir) => ({ dir, pkg: JSON.parse(read(`${dir}/package.json`)) as Manifest }));

/** A module's relative imports and re-exports (static and dynamic), resolved to files, and its bare ones. */
function importsOf(file: string): { local: string[]; bare: string[] } {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly = ts.isImportDeclaration(node) ? node.importClause?.isTypeOnly : node.isTypeOnly;
      if (!typeOnly) specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && ts.isStringLiteral(node.arguments[0])) {
      specifiers.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return {
    local: specifiers.filter((s) => s.startsWith(".")).map((s) => resolve(dirname(file), s)),
    bare: specifiers.filter((s) => !s.startsWith(".")),
  };
}

/** Every module reachable from `entry` through relative imports. */
function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    stack.push(...importsOf(file).local);
  }
  return seen;
}

/**
 * Whether importing `file` changes something outside it: a top-level statement other than a declaration
 * (a call, an assignment, a loop) that names an imported binding or a global object. Filling the module's
 * own tables at load time (kernels/libm.ts) does not count; registering a class with another module does.
 */
function reachesOut(file: string): boolean {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const outside = new Set(["globalThis", "window", "self", "process", "console"]);
  for (const s of source.statements) {
    if (ts.isImportDeclaration(s) && s.importClause && !s.importClause.isTypeOnly) {
      const { name, namedBindings } = s.importClause;
      if (name) outside.add(name.text);
      if (namedBindings && ts.isNamespaceImport(namedBindings)) outside.add(namedBindings.name.text);
      if (namedBindings && ts.isNamedImports(namedBindings)) for (const e of namedBindings.elements) if (!e.isTypeOnly) outside.add(e.name.text);
    }
  }
  let found = false;
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && outside.has(node.text)) found = true;
    else if (!ts.isFunctionLike(node) && !ts.isClassLike(node)) ts.forEachChild(node, visit);
  };
  for (const s of source.statements) {
    if (ts.isExpressionStatement(s) || ts.isIfStatement(s) || ts.isIterationStatement(s, false) || ts.isTryStatement(s) || ts.isBlock(s)) visit(s);
  }
  return found;
}

const nodeBuiltins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

describe("packaging", () => {
  it("packaging: tsconfig.json maps every export of every package to its source, and nothing else", () => {
    const { config } = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile);
    const expected: Record<string, string[]> = {};
    for (const { dir, pkg } of packages) {
      for (const [subpath, target] of Object.entries(pkg.exports)) {
        if (typeof target === "string") continue; // ./package.json
        expect(target.types).toBe(target.import.replace(/\.js$/, ".d.ts"));
        expected[pkg.name + subpath.slice(1)] = [`./${dir}/${target.import.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts")}`];
      }
    }
    expect(config.compilerOptions.paths).toEqual(expected);
  });

  it("packaging: the workspace's @tapegrad imports are the sources, so there is one Tensor class", () => {
    expect(new nn.Linear(2, 3).weight).toBeInstanceOf(Tensor);
  });

  it("packaging: the browser-safe entries import no Node module, and nn's core none of its node/ folder", () => {
    const entries = ["packages/autograd/src/index.ts", "packages/autograd/src/kernels/index.ts", "packages/nn/src/index.ts"];
    for (const entry of entries) {
      for (const file of reachable(join(root, entry))) {
        const where = relative(root, file);
        expect(importsOf(file).bare.filter((s) => nodeBuiltins.has(s)), where).toEqual([]);
        expect(where, `${entry} reaches ${where}`).not.toMatch(/^packages\/nn\/src\/node\//);
      }
    }
  });

  it("packaging: sideEffects names every module with top-level code beyond declarations", () => {
    for (const { dir, pkg } of packages) {
      const modules = [...reachable(join(root, dir, "src/index.ts"))];
      for (const target of Object.values(pkg.exports)) {
        if (typeof target !== "string") modules.push(...reachable(join(root, dir, target.import.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"))));
      }
      const effectful = [...new Set(modules)].filter(reachesOut).map((file) => `./${relative(join(root, dir), file)}`);
      const declared = pkg.sideEffects === false ? [] : (pkg.sideEffects as string[]);
      const expected = effectful.map((src) => src.replace(/^\.\/src\//, "./dist/").replace(/\.ts$/, ".js"));
      expect(declared.slice().sort(), `${pkg.name} sideEffects`).toEqual(expected.sort());
    }
  });

  it("packaging: each package carries the repository's licence, and no local build of the addon", () => {
    const license = read("LICENSE");
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} The tapegrad authors\n/);
    for (const { dir, pkg } of packages) {
      expect(read(`${dir}/LICENSE`), dir).toBe(license);
      expect(pkg.files.filter((f) => f.startsWith("native")), dir).toEqual(pkg.files.filter((f) => /^native\/\*\.[ch]$/.test(f)));
    }
  });
});
