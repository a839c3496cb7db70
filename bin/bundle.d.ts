/** The project's root (the folder above bin/). */
export declare const ROOT: string
/** Where `npm run build` writes the bundle and the event reader thread's, and the list of what they were built from. */
export declare const bundlePaths: (root?: string) => { readonly bundle: string; readonly reader: string; readonly inputs: string }
/** The bundle's path while it is up to date with every file it was built from; null otherwise. */
export declare const freshBundle: (root?: string, env?: Record<string, string | undefined>) => string | null
