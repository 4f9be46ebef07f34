"""Quality-control pictures: FLAIR mosaics with mask contours, for people to look at."""
