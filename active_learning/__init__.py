"""Ranking unlabelled images by uncertainty and diversity. Not built yet."""
