"""Ranking unlabelled images by uncertainty and diversity: `annot rank`."""
