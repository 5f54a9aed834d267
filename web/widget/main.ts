// dist/widget.js: defines <tabgrid-widget> for any page that loads this script.
import { defineTabgridWidget } from './tabgrid-widget';

defineTabgridWidget();
