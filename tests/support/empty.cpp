// Keeps the support library non-empty before any helper exists, and is the
// one source of the target that builds the tests' shared precompiled header.
