"""``echo``: a deploy target that "serves" a model version by recording it in a JSON state file."""
