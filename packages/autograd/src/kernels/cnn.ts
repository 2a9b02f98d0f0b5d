/** The convolutional-network kernels: convolution (conv.ts), pooling (pool.ts) and normalisation (norm.ts). */
export * from "./conv.ts";
export * from "./pool.ts";
export * from "./norm.ts";
