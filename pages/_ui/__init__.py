"""Streamlit pieces shared by the pages: the shell, the sidebar filter and the gallery."""
