/**
 * The crash checker as a library (moving here from packages/cli).
 *
 * @module
 */
export {};
