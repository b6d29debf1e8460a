"""Named SQL operations per stage of the flow: the only place, with `sql/`, where SQL lives."""
