/** Every example, in the order `pnpm example --help` lists them. */
import type { Example } from "../lib/example.ts";
import { fromScratch } from "./from-scratch.ts";
import { gradientCheck } from "./gradient-check.ts";
import { hardest } from "./hardest.ts";
import { mlp } from "./mlp.ts";
import { softmaxRegression } from "./softmax-regression.ts";
import { lenet } from "./lenet.ts";
import { cnn } from "./cnn.ts";

export const examples: Example[] = [mlp, softmaxRegression, fromScratch, gradientCheck, hardest, lenet, cnn];
