/**
 * The deep check of an image (moving here from packages/cli/fsck.ts).
 *
 * @module
 */
export {};
