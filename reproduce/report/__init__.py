"""What people read: the notebooks' calls, the figures, the book's pages and its build."""
