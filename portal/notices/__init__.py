"""Customer notices: versioned drafts, legal sign-off, publishing, public pages and PDFs."""
