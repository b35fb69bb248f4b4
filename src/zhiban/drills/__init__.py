"""Drills: synthetic tickets and alerts at chosen local times, run through the real chain, ending in a result."""
