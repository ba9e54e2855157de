"""Pages of the tokenlimit admin panel (`streamlit run app.py`); shared code lives in `common/`."""
