"""The course: the notebook runner and its report, the course map, notebook hygiene, exercises."""
