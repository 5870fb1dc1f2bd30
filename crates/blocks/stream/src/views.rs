//! Windowed views (next).
