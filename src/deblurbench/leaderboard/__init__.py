"""Read-only views of the results database: the terminal table and the Streamlit app."""
