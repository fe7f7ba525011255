"""From points to pictures: outlier removal, heat map, box, colour map and overlay."""
