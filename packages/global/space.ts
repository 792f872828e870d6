/**
 * The global space of one node (H3 writes it; see /tmp/team/API.md).
 *
 * @module
 */
export {};
