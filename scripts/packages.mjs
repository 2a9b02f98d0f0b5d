// The publishable packages, dependencies before dependents (scripts/build.mjs and scripts/consumer-test.mjs).
export const PUBLISHED = ["packages/autograd", "packages/nn"];
