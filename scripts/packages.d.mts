/** The publishable packages' folders, dependencies before dependents. */
export declare const PUBLISHED: readonly string[];
