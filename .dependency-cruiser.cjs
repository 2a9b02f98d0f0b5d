/** The import-cycle check (`pnpm check:cycles`, run by CI): no runtime import cycle in the packages' sources.
 *  Type-only imports are erased at compile time, so they may point back up the layers. */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A runtime import cycle: restructure the layers (see README, Design) instead of importing upwards.",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
  },
};
